/* test_kernels_conv2d.c: conv2d_forward/backward against a direct double-precision
 * convolution and central finite differences.
 *
 * Tolerances (see gradcheck.h for the error model):
 *  FWD_TOL 2e-5: each output is a float32 sum of C*K*K <= 150 products of O(1) numbers;
 *    its rounding error grows like sqrt(C*K*K) * eps_f32 * |partial sums|, a few 1e-6
 *    (2.4e-6 observed).
 *  GRAD_TOL 1e-3 with H_STEP 0.1: the op is linear in inp, w and b, so the central
 *    difference has no truncation error at any step, and a step of 0.1 rather than the usual
 *    1e-2 divides the float32 rounding of the outputs a perturbation touches (~err_out / h)
 *    by 10. That rounding is largest for Winograd F(4x4,3x3), whose outputs carry ~1e-5
 *    error: with h = 1e-2 a layer with one output channel read 1.8e-3 (its gradients agree
 *    with a double-precision reference to 7e-6). A wrong index, flip or offset gives O(1)
 *    errors.
 *  ACC_TOL 1e-5: backward adds per-thread partial sums onto the existing gradient, so a
 *    second call rounds differently from 2x the first by a few eps_f32 of the sum.
 *  WINO_ACC_TOL 5e-5: the same for 3x3/pad-1 layers (Winograd F(4x4,3x3)), whose dw is summed
 *    in the transformed domain, where tile values are scaled by up to 8 and cancel when
 *    transformed back (the 1/24 of G): another order of those sums moves dw by ~1e-5.
 *
 * Scratch is filled with NaN before every call: no result may depend on what it held, and
 * a guard zone after it must stay untouched. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"
#include "testutil.h"

#define FWD_TOL  2e-5
#define GRAD_TOL 1e-3
#define ACC_TOL  1e-5
#define WINO_ACC_TOL 5e-5
#define H_STEP   1e-1
#define GUARD    64

typedef struct {
    int B, C, H, W, OC, K, pad;
} shape;

/* odd sizes (N=3, C=5, OC=7), each padding regime, 1x1 (no im2col), non-square images,
 * rows of one, two and three 16-float runs, a kernel wider than the image, more images
 * than scratch slots, and LeNet's two layers; for Winograd (3x3, pad 1) also rows of more
 * than 16 tiles (W = 70) and a 1x1 image. One input or one output channel (K 3 or 5) takes
 * the direct path on AVX-512 builds (conv2d_direct.c): there also blocks of 8 output
 * channels and a remainder (OC = 11), a single output channel (8-row blocks) over an odd
 * number of rows, and each padding from 0 to K - 1. */
static const shape shapes[] = {
    {2, 2, 7, 7, 3, 3, 1},    {2, 2, 7, 7, 3, 5, 2},    {2, 2, 7, 7, 3, 3, 0},
    {3, 5, 6, 9, 7, 3, 1},    {3, 5, 5, 5, 7, 1, 0},    {2, 3, 4, 20, 2, 3, 1},
    {2, 1, 3, 36, 2, 3, 1},   {1, 1, 2, 2, 1, 5, 2},    {20, 2, 5, 5, 3, 3, 1},
    {2, 1, 28, 28, 6, 5, 2},  {3, 6, 14, 14, 16, 5, 0}, {1, 2, 5, 70, 3, 3, 1},
    {2, 1, 1, 1, 2, 3, 1},    {2, 1, 9, 19, 11, 3, 0},  {3, 6, 11, 21, 1, 3, 1},
    {2, 4, 13, 17, 1, 5, 4},  {2, 1, 10, 33, 3, 5, 1},  {18, 3, 6, 7, 1, 3, 2}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

typedef struct {
    shape s;
    int OH, OW;
    size_t n_in, n_w, n_out, n_scratch;
    float *inp, *w, *b, *out, *R, *scratch; /* R: the projection, L = <out, R> */
} conv;

static conv conv_make(shape s, uint64_t seed) {
    conv t = {.s = s};
    t.OH = s.H + 2 * s.pad - s.K + 1;
    t.OW = s.W + 2 * s.pad - s.K + 1;
    t.n_in = (size_t)s.B * s.C * s.H * s.W;
    t.n_w = (size_t)s.OC * s.C * s.K * s.K;
    t.n_out = (size_t)s.B * s.OC * t.OH * t.OW;
    t.n_scratch = conv2d_scratch_floats(s.B, s.C, s.H, s.W, s.OC, s.K, s.pad);
    t.inp = rand_floats(t.n_in, seed, -1.0f, 1.0f);
    t.w = rand_floats(t.n_w, seed + 1, -1.0f, 1.0f);
    t.b = rand_floats((size_t)s.OC, seed + 2, -1.0f, 1.0f);
    t.R = rand_floats(t.n_out, seed + 3, -1.0f, 1.0f);
    t.out = kernels_alloc(t.n_out);
    t.scratch = kernels_alloc(t.n_scratch + GUARD);
    return t;
}

static void conv_free(conv *t) {
    kernels_free(t->inp);
    kernels_free(t->w);
    kernels_free(t->b);
    kernels_free(t->R);
    kernels_free(t->out);
    kernels_free(t->scratch);
}

static void dirty_scratch(conv *t) {
    for (size_t i = 0; i < t->n_scratch; i++) t->scratch[i] = NAN;
    for (size_t i = 0; i < GUARD; i++) t->scratch[t->n_scratch + i] = 12345.0f;
}

static void expect_guard_intact(const conv *t) {
    int ok = 1;
    for (size_t i = 0; i < GUARD; i++) ok &= t->scratch[t->n_scratch + i] == 12345.0f;
    cr_expect(ok, "scratch overrun: B=%d C=%d H=%d W=%d OC=%d K=%d pad=%d", t->s.B, t->s.C, t->s.H,
              t->s.W, t->s.OC, t->s.K, t->s.pad);
}

static void forward(conv *t, const float *bias) {
    dirty_scratch(t);
    conv2d_forward(t->out, t->inp, t->w, bias, t->scratch, t->s.B, t->s.C, t->s.H, t->s.W, t->s.OC,
                   t->s.K, t->s.pad);
    expect_guard_intact(t);
}

/* direct convolution in double:
 * out[b,o,y,x] = bias[o] + sum_{c,ky,kx} w[o,c,ky,kx] * inp[b,c,y+ky-pad,x+kx-pad] */
static double *conv_ref(const conv *t, const float *bias) {
    const shape s = t->s;
    double *ref = malloc(sizeof(double) * t->n_out);
    for (int b = 0; b < s.B; b++)
        for (int o = 0; o < s.OC; o++)
            for (int y = 0; y < t->OH; y++)
                for (int x = 0; x < t->OW; x++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (int c = 0; c < s.C; c++)
                        for (int ky = 0; ky < s.K; ky++)
                            for (int kx = 0; kx < s.K; kx++) {
                                int iy = y + ky - s.pad, ix = x + kx - s.pad;
                                if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                acc += (double)t->w[((size_t)(o * s.C + c) * s.K + ky) * s.K + kx] *
                                       t->inp[((size_t)(b * s.C + c) * s.H + iy) * s.W + ix];
                            }
                    ref[(((size_t)b * s.OC + o) * t->OH + y) * t->OW + x] = acc;
                }
    return ref;
}

Test(conv2d, forward_matches_reference_at_every_thread_count) {
    kc_force_parallel(1);
    const int threads[] = {1, 2, 3, 20}; /* 20: more threads than scratch slots */
    for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
        kernels_set_threads(threads[k]);
        for (size_t i = 0; i < NSHAPES; i++) {
            conv t = conv_make(shapes[i], 10 * i + 1);
            for (int with_bias = 0; with_bias <= 1; with_bias++) {
                double *ref = conv_ref(&t, with_bias ? t.b : NULL);
                forward(&t, with_bias ? t.b : NULL);
                double err = gc_max_err(t.out, ref, t.n_out);
                cr_expect(err < FWD_TOL, "shape %zu bias %d threads %d: err %g", i, with_bias,
                          threads[k], err);
                free(ref);
            }
            conv_free(&t);
        }
    }
}

static double conv_loss(void *ctx) {
    conv *t = ctx;
    conv2d_forward(t->out, t->inp, t->w, t->b, t->scratch, t->s.B, t->s.C, t->s.H, t->s.W, t->s.OC,
                   t->s.K, t->s.pad);
    return gc_dot(t->out, t->R, t->n_out);
}

typedef struct {
    float *dinp, *dw, *db;
} conv_grads;

static conv_grads grads_alloc(const conv *t) {
    conv_grads g = {kernels_alloc(t->n_in), kernels_alloc(t->n_w), kernels_alloc((size_t)t->s.OC)};
    return g;
}

static void grads_free(conv_grads *g) {
    kernels_free(g->dinp);
    kernels_free(g->dw);
    kernels_free(g->db);
}

/* dout = R; any of the three may be NULL */
static void backward(conv *t, float *dinp, float *dw, float *db) {
    dirty_scratch(t);
    conv2d_backward(dinp, dw, db, t->R, t->inp, t->w, t->scratch, t->s.B, t->s.C, t->s.H, t->s.W,
                    t->s.OC, t->s.K, t->s.pad);
    expect_guard_intact(t);
}

static void check_grads(shape s, int threads) {
    kernels_set_threads(threads);
    conv t = conv_make(s, 1000 + s.K * 10 + s.pad);
    conv_grads g = grads_alloc(&t);
    backward(&t, g.dinp, g.dw, g.db);
    /* the many forward passes below run alone: a parallel region per tiny forward pass
     * only slows the suite down on a loaded machine; threaded forwards are checked above */
    kernels_set_threads(1);
    char what[96];
    snprintf(what, sizeof what, "conv B%d C%d %dx%d OC%d K%d pad%d threads%d", s.B, s.C, s.H, s.W,
             s.OC, s.K, s.pad, threads);
    float *x[3] = {t.inp, t.w, t.b};
    const float *grad[3] = {g.dinp, g.dw, g.db};
    size_t n[3] = {t.n_in, t.n_w, (size_t)s.OC};
    const char *name[3] = {"dinp", "dw", "db"};
    for (int k = 0; k < 3; k++) {
        double err = gradcheck(conv_loss, &t, x[k], grad[k], n[k], H_STEP, 300, GRAD_TOL, what);
        cr_expect(err < GRAD_TOL, "%s: %s error %g", what, name[k], err);
    }
    grads_free(&g);
    conv_free(&t);
}

Test(conv2d, backward_matches_finite_differences) {
    kc_force_parallel(1);
    check_grads((shape){2, 2, 7, 7, 3, 3, 1}, 2);
    check_grads((shape){2, 2, 7, 7, 3, 5, 2}, 1);
    check_grads((shape){2, 2, 7, 7, 3, 3, 0}, 2);
    check_grads((shape){3, 5, 6, 9, 7, 3, 1}, 3);
    check_grads((shape){3, 5, 5, 5, 7, 1, 0}, 2);
    check_grads((shape){2, 1, 3, 36, 2, 3, 1}, 2);
    check_grads((shape){1, 1, 2, 2, 1, 5, 2}, 1);
    check_grads((shape){1, 2, 5, 70, 3, 3, 1}, 2); /* Winograd rows of more than 16 tiles */
    check_grads((shape){20, 2, 5, 5, 3, 3, 1}, 2); /* Winograd chunks spanning images */
    check_grads((shape){2, 1, 9, 19, 11, 3, 0}, 2); /* direct: one input channel */
    check_grads((shape){3, 6, 11, 21, 1, 3, 1}, 2); /* direct: one output channel */
    check_grads((shape){2, 4, 13, 17, 1, 5, 4}, 1); /* direct: pad K - 1 */
    check_grads((shape){2, 1, 10, 33, 3, 5, 1}, 3);
}

Test(conv2d, backward_accumulates) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    conv t = conv_make((shape){3, 5, 6, 9, 7, 3, 1}, 31);
    conv_grads once = grads_alloc(&t), twice = grads_alloc(&t), onto = grads_alloc(&t);
    float *g0 = rand_floats(t.n_in + t.n_w + t.s.OC, 32, -1.0f, 1.0f);
    memcpy(onto.dinp, g0, t.n_in * sizeof(float));
    memcpy(onto.dw, g0 + t.n_in, t.n_w * sizeof(float));
    memcpy(onto.db, g0 + t.n_in + t.n_w, t.s.OC * sizeof(float));
    backward(&t, once.dinp, once.dw, once.db);
    backward(&t, twice.dinp, twice.dw, twice.db);
    backward(&t, twice.dinp, twice.dw, twice.db);
    backward(&t, onto.dinp, onto.dw, onto.db);
    expect_sum(twice.dinp, once.dinp, once.dinp, t.n_in, ACC_TOL, "dinp twice");
    expect_sum(twice.dw, once.dw, once.dw, t.n_w, ACC_TOL, "dw twice");
    expect_sum(twice.db, once.db, once.db, t.s.OC, ACC_TOL, "db twice");
    expect_sum(onto.dinp, g0, once.dinp, t.n_in, ACC_TOL, "dinp onto g0");
    expect_sum(onto.dw, g0 + t.n_in, once.dw, t.n_w, ACC_TOL, "dw onto g0");
    expect_sum(onto.db, g0 + t.n_in + t.n_w, once.db, t.s.OC, ACC_TOL, "db onto g0");
    kernels_free(g0);
    grads_free(&once);
    grads_free(&twice);
    grads_free(&onto);
    conv_free(&t);
}

/* Every subset of {dinp, dw, db}: the requested gradients equal the full call's bit for
 * bit (same thread count, same per-thread partials), the others stay untouched. */
static void check_null_subsets(shape s) {
    conv t = conv_make(s, 77);
    conv_grads all = grads_alloc(&t);
    backward(&t, all.dinp, all.dw, all.db);
    size_t n[3] = {t.n_in, t.n_w, (size_t)s.OC};
    for (int mask = 0; mask < 8; mask++) {
        conv_grads some = grads_alloc(&t);
        float *got[3] = {some.dinp, some.dw, some.db}, *want[3] = {all.dinp, all.dw, all.db};
        backward(&t, mask & 1 ? some.dinp : NULL, mask & 2 ? some.dw : NULL,
                 mask & 4 ? some.db : NULL);
        for (int k = 0; k < 3; k++) {
            int requested = mask >> k & 1;
            size_t bad = n[k];
            for (size_t i = 0; i < n[k] && bad == n[k]; i++)
                if (got[k][i] != (requested ? want[k][i] : 0.0f)) bad = i;
            cr_expect(bad == n[k], "K=%d mask %d gradient %d differs at [%zu]", s.K, mask, k, bad);
        }
        grads_free(&some);
    }
    grads_free(&all);
    conv_free(&t);
}

Test(conv2d, null_gradients_skip_their_work_only) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    check_null_subsets((shape){3, 2, 7, 7, 3, 3, 1});
    check_null_subsets((shape){3, 5, 5, 5, 7, 1, 0});
    check_null_subsets((shape){3, 4, 9, 11, 1, 3, 1}); /* direct */
}

Test(conv2d, deterministic_and_thread_count_independent_within_rounding) {
    kc_force_parallel(1);
    shape s = {5, 3, 8, 8, 4, 3, 1}; /* 3x3, pad 1: Winograd */
    conv t = conv_make(s, 5);
    conv_grads by_threads[3];
    for (int k = 0; k < 3; k++) {
        kernels_set_threads(k + 1);
        by_threads[k] = grads_alloc(&t);
        backward(&t, by_threads[k].dinp, by_threads[k].dw, by_threads[k].db);
        conv_grads again = grads_alloc(&t);
        backward(&t, again.dinp, again.dw, again.db);
        cr_expect(memcmp(again.dinp, by_threads[k].dinp, t.n_in * sizeof(float)) == 0);
        cr_expect(memcmp(again.dw, by_threads[k].dw, t.n_w * sizeof(float)) == 0);
        cr_expect(memcmp(again.db, by_threads[k].db, s.OC * sizeof(float)) == 0);
        grads_free(&again);
    }
    for (int k = 1; k < 3; k++) {
        double dw_err = 0, db_err = 0;
        for (size_t i = 0; i < t.n_w; i++)
            dw_err = fmax(dw_err, fabs(by_threads[k].dw[i] - by_threads[0].dw[i]) /
                                      fmax(1.0, fabs(by_threads[0].dw[i])));
        for (int i = 0; i < s.OC; i++)
            db_err = fmax(db_err, fabs(by_threads[k].db[i] - by_threads[0].db[i]) /
                                      fmax(1.0, fabs(by_threads[0].db[i])));
        cr_expect(dw_err < WINO_ACC_TOL && db_err < ACC_TOL, "threads %d vs 1: dw %g db %g", k + 1,
                  dw_err, db_err);
        /* images never share a thread, so dinp does not depend on the thread count */
        cr_expect(memcmp(by_threads[k].dinp, by_threads[0].dinp, t.n_in * sizeof(float)) == 0);
    }
    for (int k = 0; k < 3; k++) grads_free(&by_threads[k]);
    conv_free(&t);
}
