/* eval.c: `dtrain eval diffusion`: judge generated digits with the classify job's LeNet.
 *
 *   dtrain eval diffusion --ckpt PATH --classifier LENET_CKPT [--n-per-label 100]
 *       [--guidance W] [--steps S] [--sampler ddim|ddpm] [--seed S] [--ema 1|0]
 *       [--out-json FILE] [--key value ...]
 *
 * 1. Conditional accuracy: n samples per digit, classified by the LeNet; the fraction
 *    whose predicted class is the label asked for, per digit and overall.
 * 2. A Fréchet distance on the LeNet's 84-d penultimate features (FID's formula with a
 *    judge that knows MNIST) between the samples and the whole test set, printed beside
 *    the same distance for an equally large set of real training images (the floor: what a
 *    perfect generator would score at this sample size) and for a trivial baseline (the
 *    per-pixel mean image plus Gaussian noise of the per-pixel standard deviation). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "cli.h"
#include "frechet.h"
#include "util.h"

#define EVAL_STREAM 0x6a75646765ull /* "judge" */

typedef struct judge {
    trainer t;
    int width;         /* feature width (84 for LeNet) */
} judge;

/* logits (may be NULL) and features of n images, in chunks the classifier holds */
static void judge_run(judge *j, const uint8_t *imgs, long n, int HW, float *feat, int *pred) {
    const int chunk = 500;
    float *logits = xmalloc((size_t)chunk * 10 * sizeof *logits);
    for (long i = 0; i < n; i += chunk) {
        int k = (int)(n - i < chunk ? n - i : chunk);
        classify_features(j->t.js, &j->t, imgs + (size_t)i * HW, k, feat + (size_t)i * j->width);
        if (pred) {
            classify_logits(j->t.js, &j->t, imgs + (size_t)i * HW, k, logits);
            for (int b = 0; b < k; b++) {
                int best = 0;
                for (int c = 1; c < 10; c++)
                    if (logits[b * 10 + c] > logits[b * 10 + best]) best = c;
                pred[i + b] = best;
            }
        }
    }
    free(logits);
}

typedef struct gauss {
    double *mean, *cov;
} gauss;

static gauss fit(judge *j, const uint8_t *imgs, long n, int HW) {
    float *feat = xmalloc((size_t)n * j->width * sizeof *feat);
    judge_run(j, imgs, n, HW, feat, NULL);
    gauss g = {xmalloc((size_t)j->width * sizeof(double)), xmalloc((size_t)j->width * j->width * sizeof(double))};
    gauss_fit(feat, (int)n, j->width, g.mean, g.cov);
    free(feat);
    return g;
}

static void gauss_free(gauss *g) { free(g->mean), free(g->cov); }

/* All of a split, in file order. */
static uint8_t *read_split(image_shard *s, long *n, uint8_t **labels) {
    *n = image_shard_size(s);
    size_t HW = (size_t)image_shard_height(s) * image_shard_width(s);
    uint8_t *imgs = xmalloc((size_t)*n * HW);
    *labels = xmalloc((size_t)*n);
    image_shard_set_epoch(s, 0, 0, 0);
    image_shard_get(s, 0, (int)*n, imgs, *labels, NULL);
    return imgs;
}

/* n training images drawn without replacement (partial Fisher-Yates) */
static uint8_t *train_subset(const uint8_t *train, long ntrain, long n, int HW, rng *r) {
    long *idx = xmalloc((size_t)ntrain * sizeof *idx);
    for (long i = 0; i < ntrain; i++) idx[i] = i;
    uint8_t *out = xmalloc((size_t)n * HW);
    for (long i = 0; i < n; i++) {
        long k = i + (long)rng_below(r, (uint64_t)(ntrain - i)), tmp = idx[i];
        idx[i] = idx[k], idx[k] = tmp;
        memcpy(out + (size_t)i * HW, train + (size_t)idx[i] * HW, (size_t)HW);
    }
    free(idx);
    return out;
}

/* The trivial baseline: per-pixel mean of the training set + N(0, per-pixel std^2), clamped */
static uint8_t *mean_plus_noise(const uint8_t *train, long ntrain, long n, int HW, rng *r) {
    double *mean = xcalloc((size_t)HW, sizeof *mean), *sq = xcalloc((size_t)HW, sizeof *sq);
    for (long i = 0; i < ntrain; i++)
        for (int p = 0; p < HW; p++) {
            double v = train[(size_t)i * HW + p];
            mean[p] += v, sq[p] += v * v;
        }
    uint8_t *out = xmalloc((size_t)n * HW);
    for (int p = 0; p < HW; p++) {
        mean[p] /= ntrain;
        sq[p] = sqrt(fmax(sq[p] / ntrain - mean[p] * mean[p], 0.0));
    }
    for (long i = 0; i < n; i++)
        for (int p = 0; p < HW; p++) {
            double v = mean[p] + sq[p] * rng_normal(r);
            out[(size_t)i * HW + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
    free(mean), free(sq);
    return out;
}

typedef struct figures {
    double acc[10], acc_all, fd_gen, fd_floor, fd_trivial, gen_s;
    long n_per_label;
} figures;

static int write_json(const char *path, const dopts *o, const figures *f, long step) {
    FILE *out = fopen(path, "w");
    if (!out) {
        fprintf(stderr, "dtrain eval: %s: cannot create\n", path);
        return EXIT_RUNTIME;
    }
    fprintf(out, "{\"ckpt\": \"%s\", \"step\": %ld, \"sampler\": \"%s\", \"steps\": %d, \"guidance\": %g, "
                 "\"ema\": %d, \"n_per_label\": %ld, \"cond_acc\": %.4f",
            o->ckpt, step, o->gen.ddpm ? "ddpm" : "ddim", o->gen.steps, o->gen.guidance, o->ema, f->n_per_label,
            f->acc_all);
    for (int k = 0; k < 10; k++) fprintf(out, ", \"cond_acc_%d\": %.4f", k, f->acc[k]);
    fprintf(out, ", \"fd_generated\": %.4f, \"fd_floor_train_vs_test\": %.4f, \"fd_trivial_baseline\": %.4f, "
                 "\"generate_s\": %.1f}\n", f->fd_gen, f->fd_floor, f->fd_trivial, f->gen_s);
    return fclose(out) == 0 ? 0 : EXIT_RUNTIME;
}

static int evaluate(trainer *t, judge *j, const dopts *o) {
    int HW = diffusion_unet(t->js)->cfg.H * diffusion_unet(t->js)->cfg.W;
    long per = o->n, n = per * 10, ntrain, ntest;
    figures f = {.n_per_label = per};
    rng r;
    rng_seed(&r, (uint64_t)o->seed, EVAL_STREAM);
    /* 1. generate and classify */
    int32_t *labels = xmalloc((size_t)n * sizeof *labels);
    for (long i = 0; i < n; i++) labels[i] = (int32_t)(i / per);
    uint8_t *gen = xmalloc((size_t)n * HW);
    double t0 = now_sec();
    diffusion_generate(t->js, t, labels, (int)n, &o->gen, &r, gen);
    f.gen_s = now_sec() - t0;
    float *feat = xmalloc((size_t)n * j->width * sizeof *feat);
    int *pred = xmalloc((size_t)n * sizeof *pred);
    judge_run(j, gen, n, HW, feat, pred);
    long correct = 0;
    for (int k = 0; k < 10; k++) {
        long c = 0;
        for (long i = k * per; i < (k + 1) * per; i++) c += pred[i] == k;
        f.acc[k] = (double)c / per;
        correct += c;
    }
    f.acc_all = (double)correct / n;
    /* 2. Fréchet distances to the test set */
    uint8_t *train_labels, *test_labels;
    uint8_t *train = read_split(diffusion_train_shard(t->js), &ntrain, &train_labels);
    uint8_t *test = read_split(diffusion_test_shard(t->js), &ntest, &test_labels);
    gauss g_test = fit(j, test, ntest, HW), g_gen = {xmalloc((size_t)j->width * sizeof(double)),
                                                     xmalloc((size_t)j->width * j->width * sizeof(double))};
    gauss_fit(feat, (int)n, j->width, g_gen.mean, g_gen.cov);
    uint8_t *real = train_subset(train, ntrain, n, HW, &r), *triv = mean_plus_noise(train, ntrain, n, HW, &r);
    gauss g_real = fit(j, real, n, HW), g_triv = fit(j, triv, n, HW);
    int d = j->width;
    f.fd_gen = frechet_distance(g_gen.mean, g_gen.cov, g_test.mean, g_test.cov, d);
    f.fd_floor = frechet_distance(g_real.mean, g_real.cov, g_test.mean, g_test.cov, d);
    f.fd_trivial = frechet_distance(g_triv.mean, g_triv.cov, g_test.mean, g_test.cov, d);

    printf("diffusion eval: %s (step %ld, %s weights), %ld samples per digit, %s %d steps, guidance %g "
           "(generated in %.1f s)\n\nconditional accuracy (LeNet judge)\n", o->ckpt, t->step, o->ema ? "EMA" : "raw",
           per, o->gen.ddpm ? "DDPM" : "DDIM", o->gen.ddpm ? diffusion_schedule(t->js)->T : o->gen.steps,
           o->gen.guidance, f.gen_s);
    for (int k = 0; k < 10; k++) printf("  digit %d: %6.2f%%\n", k, 100 * f.acc[k]);
    printf("  overall: %6.2f%%\n\nFréchet distance to the %ld test images (LeNet %d-d features, %ld images per set)\n"
           "  generated samples             %10.3f\n  real train images (floor)     %10.3f\n"
           "  mean image + noise (trivial)  %10.3f\n", 100 * f.acc_all, ntest, d, n, f.fd_gen, f.fd_floor,
           f.fd_trivial);
    int rc = o->out_json ? write_json(o->out_json, o, &f, t->step) : 0;
    gauss_free(&g_test), gauss_free(&g_gen), gauss_free(&g_real), gauss_free(&g_triv);
    free(labels), free(gen), free(feat), free(pred), free(train), free(test), free(train_labels),
        free(test_labels), free(real), free(triv);
    return rc;
}

int diffusion_eval_main(int argc, char **argv) {
    dopts o;
    char **rest = xcalloc((size_t)argc + 1, sizeof *rest); /* NULL-terminated, as MPI_Init reads it */
    int nrest, rc = dopts_parse(argc, argv, &o, rest, &nrest, 1);
    if (rc == 0) {
        trainer t;
        rc = dopts_load(&t, &o, nrest, rest);
        judge *j = xcalloc(1, sizeof *j);
        char *jargv[2] = {"classify", NULL}; /* NULL-terminated, as MPI_Init reads it */
        if (rc == 0) rc = trainer_load_for_inference(&j->t, &classify_job, o.classifier, 1, jargv);
        if (rc == 0) {
            j->width = classify_features(j->t.js, &j->t, NULL, 0, NULL);
            rc = evaluate(&t, j, &o);
        }
        if (j->t.comm) trainer_teardown(&j->t);
        free(j);
        trainer_teardown(&t);
    }
    free(rest);
    return rc;
}
