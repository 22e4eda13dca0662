/* sample.c: drawing digits from a trained model.
 *
 *   dtrain sample diffusion --ckpt PATH [--n N] [--label L|all|none] [--guidance W]
 *       [--steps S] [--sampler ddim|ddpm] [--seed S] [--ema 1|0] --out FILE.png
 *       [--out-h5 FILE.h5] [--key value ...]
 *
 * Classifier-free guidance runs the conditional and the unconditional ("no label") passes
 * as one batch of 2n: eps = eps_u + w (eps_c - eps_u). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kernels.h"
#include "pngio.h"
#include "util.h"

#define GEN_CHUNK 64 /* samples per model batch (2x with guidance) */

/* ---- generation --------------------------------------------------------------------- */

typedef struct guided {
    unet *net;
    const model *m;
    const int32_t *labels;
    int n, HW;
    double w;
    float *x2, *out;     /* [2n,HW] batch input, the U-Net's output copied to the host */
    int32_t *t2, *y2;    /* [2n] */
} guided;

static void guided_eps(void *ctx, const float *x, int t, float *eps) {
    guided *g = ctx;
    size_t px = (size_t)g->n * g->HW;
    int B = g->w != 0 ? 2 * g->n : g->n;
    memcpy(g->x2, x, px * sizeof *x);
    if (B > g->n) memcpy(g->x2 + px, x, px * sizeof *x);
    for (int b = 0; b < B; b++) {
        g->t2[b] = t;
        g->y2[b] = b < g->n ? g->labels[b] : UNET_NCLASSES;
    }
    const float *pred = unet_forward(g->net, g->m, g->x2, g->t2, g->y2, B);
    if (B == g->n) {
        kernels_to_host(eps, pred, px * sizeof *eps);
        return;
    }
    /* the guidance mix and the sampler's update run on the host, in double where ddpm.c
     * says so: one copy of the 2n predictions per step */
    float *out = g->out, w = (float)g->w;
    kernels_to_host(out, pred, 2 * px * sizeof *out);
    for (size_t i = 0; i < px; i++) eps[i] = out[px + i] + w * (out[i] - out[px + i]);
}

static uint8_t to_pixel(float v) {
    float p = (v + 1.0f) * 127.5f;
    return (uint8_t)(p < 0 ? 0 : p > 255 ? 255 : lrintf(p));
}

void diffusion_generate(void *js, trainer *t, const int32_t *labels, int n, const gen_opts *o, rng *r,
                        uint8_t *out) {
    unet *net = diffusion_unet(js);
    const ddpm_schedule *s = diffusion_schedule(js);
    int HW = net->cfg.H * net->cfg.W;
    unet_reserve(net, 2 * GEN_CHUNK, 0);
    guided g = {net, &t->model, NULL, 0, HW, o->guidance, NULL, NULL, NULL, NULL};
    g.x2 = xmalloc((size_t)2 * GEN_CHUNK * HW * sizeof *g.x2);
    g.out = xmalloc((size_t)2 * GEN_CHUNK * HW * sizeof *g.out);
    g.t2 = xmalloc((size_t)2 * GEN_CHUNK * sizeof *g.t2), g.y2 = xmalloc((size_t)2 * GEN_CHUNK * sizeof *g.y2);
    float *x = xmalloc((size_t)GEN_CHUNK * HW * sizeof *x);
    for (int i = 0; i < n; i += GEN_CHUNK) {
        g.n = n - i < GEN_CHUNK ? n - i : GEN_CHUNK;
        g.labels = labels + i;
        size_t px = (size_t)g.n * HW;
        for (size_t k = 0; k < px; k++) x[k] = rng_normal(r);
        if (o->ddpm) ddpm_sample(s, guided_eps, &g, x, px, r, 1);
        else ddim_sample(s, guided_eps, &g, x, px, o->steps, 1);
        for (size_t k = 0; k < px; k++) out[(size_t)i * HW + k] = to_pixel(x[k]);
    }
    free(x), free(g.x2), free(g.out), free(g.t2), free(g.y2);
}

/* ---- options ------------------------------------------------------------------------ */

static int parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "dtrain %s: bad value '%s' for %s: expected an integer in %ld..%ld\n", cmd, s, opt, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_guidance(const char *cmd, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v >= 0.0 && v <= 100.0)) {
        fprintf(stderr, "dtrain %s: bad value '%s' for --guidance: expected a number in 0..100\n", cmd, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_label(const char *cmd, const char *s, int *out) {
    long v;
    if (strcmp(s, "all") == 0) *out = -1;
    else if (strcmp(s, "none") == 0) *out = UNET_NCLASSES;
    else if (parse_long(cmd, "--label (or all, none)", s, 0, UNET_NCLASSES - 1, &v) == 0) *out = (int)v;
    else return -1;
    return 0;
}

/* one option and its value; 1 if it is not one of ours, -1 on a bad value */
static int take_opt(const char *cmd, const char *a, const char *v, dopts *o, int eval) {
    long l;
    if (strcmp(a, "--ckpt") == 0) o->ckpt = v;
    else if (strcmp(a, "--guidance") == 0) return parse_guidance(cmd, v, &o->gen.guidance);
    else if (strcmp(a, "--steps") == 0) return parse_long(cmd, a, v, 1, 100000, &l) ? -1 : (o->gen.steps = (int)l, 0);
    else if (strcmp(a, "--seed") == 0) return parse_long(cmd, a, v, 0, 1L << 62, &o->seed);
    else if (strcmp(a, "--ema") == 0) return parse_long(cmd, a, v, 0, 1, &l) ? -1 : (o->ema = (int)l, 0);
    else if (strcmp(a, "--sampler") == 0) {
        if (strcmp(v, "ddim") != 0 && strcmp(v, "ddpm") != 0) {
            fprintf(stderr, "dtrain %s: bad value '%s' for --sampler: expected ddim or ddpm\n", cmd, v);
            return -1;
        }
        o->gen.ddpm = strcmp(v, "ddpm") == 0;
    } else if (!eval && strcmp(a, "--n") == 0) return parse_long(cmd, a, v, 1, 100000, &o->n);
    else if (!eval && strcmp(a, "--label") == 0) return parse_label(cmd, v, &o->label);
    else if (!eval && strcmp(a, "--out") == 0) o->out_png = v;
    else if (!eval && strcmp(a, "--out-h5") == 0) o->out_h5 = v;
    else if (eval && strcmp(a, "--n-per-label") == 0) return parse_long(cmd, a, v, 2, 100000, &o->n);
    else if (eval && strcmp(a, "--classifier") == 0) o->classifier = v;
    else if (eval && strcmp(a, "--out-json") == 0) o->out_json = v;
    else return 1;
    return 0;
}

int dopts_parse(int argc, char **argv, dopts *o, char **rest, int *nrest, int eval) {
    const char *cmd = eval ? "eval" : "sample";
    *o = (dopts){.n = -1, .label = -1, .gen = {2.0, 50, 0}, .seed = 0, .ema = 1};
    rest[0] = argv[0];
    *nrest = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(a, "--", 2) == 0 && !v) {
            fprintf(stderr, "dtrain %s: %s needs a value\n", cmd, a);
            return EXIT_USAGE;
        }
        int r = v ? take_opt(cmd, a, v, o, eval) : 1;
        if (r < 0) return EXIT_USAGE;
        if (r == 1) { /* a --key value pair for the stored config: pass both on */
            rest[(*nrest)++] = argv[i];
            if (v) rest[(*nrest)++] = argv[++i];
            continue;
        }
        i++;
    }
    if (!o->ckpt || (!eval && !o->out_png) || (eval && !o->classifier)) {
        if (eval)
            fprintf(stderr, "usage: dtrain eval diffusion --ckpt PATH --classifier LENET_CKPT [--n-per-label 100] "
                            "[--guidance W] [--steps S] [--sampler ddim|ddpm] [--seed S] [--ema 1|0] "
                            "[--out-json FILE] [--key value ...]\n");
        else
            fprintf(stderr, "usage: dtrain sample diffusion --ckpt PATH --out FILE.png [--n N] [--label L|all|none] "
                            "[--guidance W] [--steps S] [--sampler ddim|ddpm] [--seed S] [--ema 1|0] "
                            "[--out-h5 FILE.h5] [--key value ...]\n");
        return EXIT_USAGE;
    }
    if (o->n < 0) o->n = eval ? 100 : (o->label < 0 ? 8 : 64);
    return 0;
}

int dopts_load(trainer *t, const dopts *o, int nrest, char **rest) {
    int rc = trainer_load_for_inference(t, &diffusion_job, o->ckpt, nrest, rest);
    if (rc == 0 && o->ema) rc = trainer_read_group(t, o->ckpt, "ema", t->model.params);
    return rc;
}

/* ---- output ------------------------------------------------------------------------- */

static int write_h5(const char *path, const uint8_t *imgs, const int32_t *labels, int n, int H, int W) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "dtrain sample: %s: cannot create\n", path);
        return EXIT_RUNTIME;
    }
    uint8_t *lab = xmalloc((size_t)n);
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)labels[i];
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)H, (hsize_t)W, 1};
    herr_t st = 0;
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t ds = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    st |= ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, imgs);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    sp = H5Screate_simple(1, dims, NULL);
    ds = H5Dcreate2(f, "labels", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    st |= ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    free(lab);
    if (H5Fclose(f) < 0 || st < 0) {
        fprintf(stderr, "dtrain sample: %s: write failed (a full disk?); the partial file is removed\n", path);
        unlink(path);
        return EXIT_RUNTIME;
    }
    return 0;
}

static int sample_with(trainer *t, const dopts *o) {
    unet *net = diffusion_unet(t->js);
    int H = net->cfg.H, W = net->cfg.W;
    int n = (int)(o->label < 0 ? o->n * UNET_NCLASSES : o->n);
    int32_t *labels = xmalloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) labels[i] = o->label < 0 ? i / (int)o->n : o->label;
    uint8_t *imgs = xmalloc((size_t)n * H * W);
    rng r;
    rng_seed(&r, (uint64_t)o->seed, 0x73616d706c65ull);
    double t0 = now_sec();
    diffusion_generate(t->js, t, labels, n, &o->gen, &r, imgs);
    double dt = now_sec() - t0;
    int cols = o->label < 0 ? (int)o->n : (int)ceil(sqrt((double)n)), gw, gh, rc = 0;
    uint8_t *grid = image_grid(imgs, n, H, W, cols, 2, &gw, &gh);
    char err[1200];
    if (png_write_gray(o->out_png, grid, gw, gh, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain sample: %s\n", err);
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && o->out_h5) rc = write_h5(o->out_h5, imgs, labels, n, H, W);
    if (rc == 0) {
        printf("wrote %s (%d samples, %s %d steps, guidance %g, %s weights of step %ld) in %.1f s\n", o->out_png, n,
               o->gen.ddpm ? "DDPM" : "DDIM", o->gen.ddpm ? diffusion_schedule(t->js)->T : o->gen.steps,
               o->gen.guidance, o->ema ? "EMA" : "raw", t->step, dt);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "dtrain sample: stdout: %s\n", strerror(errno));
            rc = EXIT_RUNTIME;
        }
    }
    free(grid), free(imgs), free(labels);
    return rc;
}

int diffusion_sample_main(int argc, char **argv) {
    dopts o;
    char **rest = xmalloc(sizeof *rest * (size_t)(argc + 1));
    int nrest, rc = dopts_parse(argc, argv, &o, rest, &nrest, 0);
    if (rc == 0) {
        trainer t;
        rc = dopts_load(&t, &o, nrest, rest);
        if (rc == 0) rc = sample_with(&t, &o);
        trainer_teardown(&t);
    }
    free(rest);
    return rc;
}
