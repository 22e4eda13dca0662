/* gj_train.c: each job's training step, as its job file does it (jobs/<job>/<job>.c), on
 * whatever backend is in use, for the cpu-against-cuda comparison of bench/gpu_check.sh.
 *
 * Both runs start from the same parameters (initialised on the host from a fixed seed) and
 * see the same batches: every random draw (example indices, text windows, timesteps, label
 * drops, noise) comes from host RNG streams with fixed seeds, and the data reaches the
 * models as host arrays, exactly as in dtrain. Only the kernels differ. Augmentation, the
 * epoch order and evaluation are left out: they run on the host and are the same code on
 * both devices.
 *
 * Recipes: the jobs' defaults (configs/<job>*.conf) with the schedule fitted to the run:
 *   classify   LeNet-5, batch 64, Adam 1e-3 constant
 *   gpt        4 layers, 4 heads, 128 channels, T 64, batch 12, AdamW 1e-3 (betas 0.9,
 *              0.99, decay 0.1), warm-up over the first tenth, cosine to 1e-4, clip 1.0
 *   diffusion  U-Net 32 channels x (1,2,2), 1 block, 8 groups, 4 heads, batch 64, AdamW
 *              1e-3, warm-up over the first tenth, cosine to 1e-4, clip 1.0, EMA 0.999
 * --tiny shrinks the models and batches so that a few steps take seconds on the emulator. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/model.h"
#include "diffusion/ddpm.h"
#include "diffusion/model.h"
#include "gpt/model.h"
#include "gpu_jobs.h"
#include "kernels.h"
#include "optim.h"
#include "rng.h"
#include "util.h"

#define SEED 20260515u
#define INIT_STREAM 0
#define DATA_STREAM 1

int gj_job_known(const char *job, const char **unit) {
    if (!strcmp(job, "classify") || !strcmp(job, "diffusion")) *unit = "images";
    else if (!strcmp(job, "gpt")) *unit = "tokens";
    else return 0;
    return 1;
}

/* 300 steps; 200 for diffusion, whose cpu half is the slowest part of the whole GPU check
 * (0.8 s a step on 2 cores here) and must leave the script within its 10 minutes */
int gj_job_default_steps(const char *job, int tiny) {
    if (tiny) return 4;
    return strcmp(job, "diffusion") ? 300 : 200;
}

/* Everything a job's run shares: the arenas, the optimizer and its schedule. */
typedef struct run {
    model m;
    optimizer o;
    lr_schedule lr;
    double clip; /* 0: none */
    rng data;    /* the batches' draws */
} run;

static void run_start(run *r, const char *opt, float beta2, float wd, lr_kind kind, int steps,
                      double clip) {
    optim_init(&r->o, opt, &r->m, 0.9f, beta2, 1e-8f, wd, 0.0f);
    r->lr = (lr_schedule){kind, 1e-3, 1e-4, kind == LR_COSINE ? steps / 10 + 1 : 0, steps};
    r->clip = clip;
    rng_seed(&r->data, SEED, DATA_STREAM);
}

/* after the forward and backward of step k: clip, step, then the next step's gradients */
static void run_update(run *r, int k) {
    if (r->clip > 0) clip_grad_norm(&r->m, r->clip);
    optim_step(&r->o, &r->m, (float)lr_at(&r->lr, k));
    model_zero_grads(&r->m);
}

/* the final parameters on the host, for the report */
static void run_finish(run *r, gj_curve *c) {
    float *p = xmalloc(r->m.nfloats * sizeof *p);
    kernels_to_host(p, r->m.params, r->m.nfloats * sizeof *p);
    double s = 0;
    for (size_t i = 0; i < r->m.nfloats; i++) s += fabs((double)p[i]);
    c->param_digest = s;
    free(p);
    optim_free(&r->o);
    model_free(&r->m);
}

/* ---- classify ------------------------------------------------------------------------- */

static int train_classify(const gj_opts *o, gj_curve *c, double *items, char *err, size_t errlen) {
    gj_mnist d;
    if (gj_mnist_load(&d, o->data_dir, err, errlen)) return -1;
    int B = o->batch ? o->batch : o->tiny ? 8 : 64;
    run r = {0};
    classifier net;
    classifier_build_lenet(&net, &r.m, d.H, d.W, 1);
    model_alloc(&r.m);
    rng init;
    rng_seed(&init, SEED, INIT_STREAM);
    classifier_init_params(&net, &r.m, &init);
    classifier_alloc(&net, B);
    run_start(&r, "adam", 0.999f, 0.0f, LR_CONSTANT, c->steps, 0);
    size_t px = (size_t)d.H * d.W;
    uint8_t *images = xmalloc((size_t)B * px), *labels = xmalloc((size_t)B);
    model_zero_grads(&r.m);
    for (int k = 0; k < c->steps; k++) {
        if (k == 1) items[0] = now_sec(); /* the first step (cuBLAS's set-up) is not timed */
        for (int b = 0; b < B; b++) {
            size_t i = (size_t)rng_below(&r.data, (uint64_t)d.n);
            memcpy(images + b * px, d.images + i * px, px);
            labels[b] = d.labels[i];
        }
        classifier_forward(&net, &r.m, images, B);
        c->loss[k] = classifier_loss(&net, labels, B);
        classifier_backward(&net, &r.m, B, 1.0f / (float)B);
        run_update(&r, k);
    }
    kernels_synchronize();
    items[1] = now_sec();
    items[2] = (double)B * (c->steps - 1);
    free(images);
    free(labels);
    classifier_free(&net);
    run_finish(&r, c);
    gj_mnist_free(&d);
    return 0;
}

/* ---- gpt ------------------------------------------------------------------------------ */

static int train_gpt(const gj_opts *o, gj_curve *c, double *items, char *err, size_t errlen) {
    gj_text text;
    if (gj_text_load(&text, o->data_dir, err, errlen)) return -1;
    gpt_config cfg = o->tiny ? (gpt_config){2, 2, 16, 16, text.vocab, 0, 0}
                             : (gpt_config){4, 4, 128, 64, text.vocab, 0, 0};
    cfg.padded_vocab = gpt_pad_vocab(cfg.vocab_size, 64);
    int B = o->batch ? o->batch : o->tiny ? 2 : 12, T = cfg.block_size;
    run r = {0};
    gpt g;
    gpt_build(&g, &r.m, &cfg);
    model_alloc(&r.m);
    rng init;
    rng_seed(&init, SEED, INIT_STREAM);
    gpt_init_params(&g, &r.m, &init);
    gpt_alloc_acts(&g, B, T);
    run_start(&r, "adamw", 0.99f, 0.1f, LR_COSINE, c->steps, 1.0);
    int32_t *in = xmalloc((size_t)B * T * sizeof *in), *tg = xmalloc((size_t)B * T * sizeof *tg);
    model_zero_grads(&r.m);
    for (int k = 0; k < c->steps; k++) {
        if (k == 1) items[0] = now_sec();
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)rng_below(&r.data, (uint64_t)(text.n - (size_t)T - 1));
            memcpy(in + (size_t)b * T, text.ids + off, (size_t)T * sizeof *in);
            memcpy(tg + (size_t)b * T, text.ids + off + 1, (size_t)T * sizeof *tg);
        }
        c->loss[k] = gpt_forward(&g, &r.m, in, tg, B, T);
        gpt_backward(&g, &r.m, 1.0f / ((float)B * (float)T));
        run_update(&r, k);
    }
    kernels_synchronize();
    items[1] = now_sec();
    items[2] = (double)B * T * (c->steps - 1);
    free(in);
    free(tg);
    gpt_free(&g);
    run_finish(&r, c);
    gj_text_free(&text);
    return 0;
}

/* ---- diffusion ------------------------------------------------------------------------ */

static int train_diffusion(const gj_opts *o, gj_curve *c, double *items, char *err, size_t errlen) {
    gj_mnist d;
    if (gj_mnist_load(&d, o->data_dir, err, errlen)) return -1;
    unet_config cfg = o->tiny ? (unet_config){d.H, d.W, 2, {8, 16}, 1, 4, 2}
                              : (unet_config){d.H, d.W, 3, {32, 64, 64}, 1, 8, 4};
    if (unet_check(&cfg, err, errlen)) return -1;
    int B = o->batch ? o->batch : o->tiny ? 2 : 64;
    size_t HW = (size_t)d.H * d.W, px = (size_t)B * HW;
    run r = {0};
    unet u;
    unet_build(&u, &r.m, &cfg);
    model_alloc(&r.m);
    rng init;
    rng_seed(&init, SEED, INIT_STREAM);
    unet_init_params(&u, &r.m, &init);
    unet_reserve(&u, B, 1);
    run_start(&r, "adamw", 0.999f, 0.0f, LR_COSINE, c->steps, 1.0);
    ddpm_schedule sched;
    ddpm_schedule_init(&sched, 1000, 1e-4, 0.02);
    float *ema = kernels_alloc(r.m.nfloats);
    kernels_copy(ema, r.m.params, r.m.nfloats * sizeof *ema);
    /* host: the batch and its draws; backend: the noise target and the loss gradient */
    float *x0 = xmalloc(px * sizeof *x0), *xt = xmalloc(px * sizeof *xt);
    float *noise = xmalloc(px * sizeof *noise);
    int32_t *steps = xmalloc((size_t)B * sizeof *steps), *labels = xmalloc((size_t)B * sizeof *labels);
    float *noise_dev = kernels_alloc(px), *dpred = kernels_alloc(px);
    model_zero_grads(&r.m);
    for (int k = 0; k < c->steps; k++) {
        if (k == 1) items[0] = now_sec();
        for (int b = 0; b < B; b++) {
            size_t i = (size_t)rng_below(&r.data, (uint64_t)d.n);
            for (size_t p = 0; p < HW; p++) x0[b * HW + p] = (float)d.images[i * HW + p] / 127.5f - 1.0f;
            steps[b] = (int32_t)rng_below(&r.data, (uint64_t)sched.T);
            labels[b] = rng_uniform(&r.data) < 0.1f ? UNET_NCLASSES : d.labels[i];
        }
        for (size_t p = 0; p < px; p++) noise[p] = rng_normal(&r.data);
        for (int b = 0; b < B; b++)
            ddpm_q_sample(&sched, xt + b * HW, x0 + b * HW, noise + b * HW, steps[b], HW);
        const float *pred = unet_forward(&u, &r.m, xt, steps, labels, B);
        kernels_to_device(noise_dev, noise, px * sizeof *noise);
        c->loss[k] = mse_forward(pred, noise_dev, px);
        kernels_zero(dpred, px * sizeof *dpred);
        mse_backward(dpred, pred, noise_dev, px, 1.0f);
        unet_backward(&u, &r.m, dpred, B);
        run_update(&r, k);
        ema_update(ema, r.m.params, r.m.nfloats, 0.999f);
    }
    kernels_synchronize();
    items[1] = now_sec();
    items[2] = (double)B * (c->steps - 1);
    free(x0);
    free(xt);
    free(noise);
    free(steps);
    free(labels);
    kernels_free(noise_dev);
    kernels_free(dpred);
    kernels_free(ema);
    ddpm_schedule_free(&sched);
    unet_free(&u);
    run_finish(&r, c);
    gj_mnist_free(&d);
    return 0;
}

int gj_train(const char *job, const gj_opts *o, gj_curve *c, char *err, size_t errlen) {
    double items[3] = {0}; /* the timed span's start and end, and the items it processed */
    double t0 = now_sec();
    int rc;
    if (c->steps < 2) {
        snprintf(err, errlen, "--steps %d: at least 2 (the first is not timed)", c->steps);
        return -1;
    }
    c->loss = xcalloc((size_t)c->steps, sizeof *c->loss);
    if (!strcmp(job, "classify")) rc = train_classify(o, c, items, err, errlen);
    else if (!strcmp(job, "gpt")) rc = train_gpt(o, c, items, err, errlen);
    else rc = train_diffusion(o, c, items, err, errlen);
    c->seconds = now_sec() - t0;
    c->items_per_s = items[1] > items[0] ? items[2] / (items[1] - items[0]) : 0;
    return rc;
}
