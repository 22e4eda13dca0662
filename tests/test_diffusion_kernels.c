/* test_diffusion_kernels.c: the diffusion U-Net's ops (groupnorm, silu, upsample2x,
 * avgpool2x2, concat_channels, add_channel, transpose_chw, full attention, mse) against
 * double-precision references written here, and their gradients against central finite
 * differences of L = <out, R> for a fixed random R (so dout = R).
 *
 * Every op with an output tensor goes through one harness (op_case): its gradients with
 * respect to every input are checked by finite differences, a second backward call must
 * add the same amount again (accumulation), and every subset of NULL gradient pointers
 * must leave the requested gradients bit-identical to the full call's.
 *
 * Tolerances (see gradcheck.h for the error model; errors are relative above 1, absolute
 * below):
 *  FWD_TOL 1e-5: each forward is a short float32 computation on O(1) values: sums of at
 *    most a few hundred terms in 16 lanes, one vm_expf (2 ulp) per element; measured
 *    errors are <= 4.4e-7. Pure data movement (upsample, concat, transpose) is compared
 *    exactly instead.
 *  GRAD_TOL 1e-3 (h = 1e-2): upsample, avgpool, concat, add_channel and transpose are
 *    linear, so only float32 rounding of L remains (~eps_f32 |L| / h ~ 1e-5; measured
 *    <= 3.5e-6). Groupnorm, SiLU and softmax attention are smooth with O(1) third
 *    derivatives on these inputs, so the O(h^2) truncation term is ~1e-4; measured
 *    <= 7.6e-5. A wrong index, sign or missing term is O(1e-1).
 *  ACC_TOL 1e-6: accumulating onto an existing gradient changes only the last rounding
 *    (adding a gradient to itself is exact, and measured 0).
 *  5e-4 for groupnorm under a mean of 1000: the float mean carries a few ulp(1000) ~ 1e-4
 *    of rounding, which xhat inherits at rstd ~ 1.7 (measured 1.6e-4; a variance that does
 *    not centre both factors is off by ~10%, which is how this test caught one).
 *
 * Threads: the finite-difference checks run at one thread (they call the forward hundreds
 * of times, and on a busy 2-core machine each fork/join can wait a scheduler tick); the
 * other tests force the threaded paths on (kc_force_parallel), and the determinism test
 * requires results bit-identical to one thread's at 2 and 3 threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"

#define FWD_TOL    1e-5
#define GRAD_TOL   1e-3
#define ACC_TOL    1e-6
#define H          1e-2
#define MAX_CHECKS 300
#define MAXIN      3 /* differentiable inputs of one op, at most */

/* ---- helpers -------------------------------------------------------------------------- */

static void expect_fwd(const float *got, const double *want, size_t n, const char *what) {
    double err = gc_max_err(got, want, n);
    cr_expect(err < FWD_TOL, "%s: forward error %g", what, err);
}

/* exact: for ops that only move or copy values */
static void expect_exact(const float *got, const double *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if ((double)got[i] != want[i]) {
            cr_expect(0, "%s: [%zu] = %.9g, want %.9g", what, i, got[i], want[i]);
            return;
        }
}

static void expect_grad(gc_loss_fn f, void *ctx, float *x, const float *g, size_t n,
                        const char *what) {
    double err = gradcheck(f, ctx, x, g, n, H, MAX_CHECKS, GRAD_TOL, what);
    cr_expect(err < GRAD_TOL, "%s: gradient error %g", what, err);
}

/* ---- the op harness ------------------------------------------------------------------- */

typedef struct op_case op_case;
struct op_case {
    char name[96];
    int d[4]; /* the op's shape arguments, in its signature's order */
    int nin;
    float *in[MAXIN];
    size_t n_in[MAXIN];
    float *out, *R, *aux[2]; /* aux: state the op saves for backward, or its scratch */
    size_t n_out;
    void (*fwd)(op_case *c);
    void (*bwd)(op_case *c, float *g[MAXIN]); /* after fwd; any g[k] may be NULL */
};

static op_case op_new(void (*fwd)(op_case *), void (*bwd)(op_case *, float *[MAXIN]),
                      size_t n_out, uint64_t seed) {
    op_case c;
    memset(&c, 0, sizeof c);
    c.fwd = fwd;
    c.bwd = bwd;
    c.n_out = n_out;
    c.out = kernels_alloc(n_out);
    c.R = rand_floats(n_out, seed, -1, 1);
    return c;
}

static void op_input(op_case *c, size_t n, uint64_t seed, float lo, float hi) {
    c->n_in[c->nin] = n;
    c->in[c->nin++] = rand_floats(n, seed, lo, hi);
}

static void op_free(op_case *c) {
    for (int k = 0; k < c->nin; k++) kernels_free(c->in[k]);
    kernels_free(c->out);
    kernels_free(c->R);
    kernels_free(c->aux[0]);
    kernels_free(c->aux[1]);
}

static double op_loss(void *ctx) {
    op_case *c = ctx;
    c->fwd(c);
    return gc_dot(c->out, c->R, c->n_out);
}

/* forward first: backward ops read what the forward saved */
static void op_backward(op_case *c, float *g[MAXIN]) {
    c->fwd(c);
    c->bwd(c, g);
}

/* zeroed gradient buffers for the inputs in mask (bit k: input k), NULL for the others */
static void grads_alloc(const op_case *c, float *g[MAXIN], int mask) {
    for (int k = 0; k < MAXIN; k++)
        g[k] = k < c->nin && (mask >> k & 1) ? kernels_alloc(c->n_in[k]) : NULL;
}

static void grads_free(float *g[MAXIN]) {
    for (int k = 0; k < MAXIN; k++) kernels_free(g[k]);
}

/* every gradient against finite differences; at one thread, see "Threads" above */
static void check_grads(op_case *c) {
    kernels_set_threads(1);
    float *g[MAXIN];
    grads_alloc(c, g, (1 << c->nin) - 1);
    op_backward(c, g);
    for (int k = 0; k < c->nin; k++) {
        char what[192];
        snprintf(what, sizeof what, "%s d(input %d)", c->name, k);
        expect_grad(op_loss, c, c->in[k], g[k], c->n_in[k], what);
    }
    grads_free(g);
}

/* twice = 2x once; each subset of the gradients equals the full call's; all NULL is a no-op */
static void check_accumulates_and_null(op_case *c) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    int all = (1 << c->nin) - 1;
    float *once[MAXIN], *twice[MAXIN];
    grads_alloc(c, once, all);
    op_backward(c, once);
    for (int k = 0; k < MAXIN; k++) twice[k] = k < c->nin ? copy_of(once[k], c->n_in[k]) : NULL;
    op_backward(c, twice);
    char what[192];
    for (int k = 0; k < c->nin; k++) {
        snprintf(what, sizeof what, "%s d(input %d) twice", c->name, k);
        expect_sum(twice[k], once[k], once[k], c->n_in[k], ACC_TOL, what);
    }
    for (int mask = 0; mask < all; mask++) {
        float *some[MAXIN];
        grads_alloc(c, some, mask);
        op_backward(c, some);
        for (int k = 0; k < c->nin; k++)
            if (mask >> k & 1) {
                snprintf(what, sizeof what, "%s d(input %d) with mask %d", c->name, k, mask);
                expect_same(some[k], once[k], c->n_in[k], what);
            }
        grads_free(some);
    }
    grads_free(once);
    grads_free(twice);
}

/* ---- groupnorm ------------------------------------------------------------------------ */

static void gn_fwd(op_case *c) {
    groupnorm_forward(c->out, c->aux[0], c->aux[1], c->in[0], c->in[1], c->in[2], c->d[0],
                      c->d[1], c->d[2], c->d[3]);
}

static void gn_bwd(op_case *c, float *g[MAXIN]) {
    groupnorm_backward(g[0], g[1], g[2], c->R, c->in[0], c->in[1], c->aux[0], c->aux[1],
                       c->d[0], c->d[1], c->d[2], c->d[3]);
}

/* inputs: x[B,C,HW], weight[C], bias[C]; aux: mean, rstd [B*G] */
static op_case gn_make(int B, int C, int HW, int G, uint64_t seed) {
    size_t n = (size_t)B * C * HW;
    op_case c = op_new(gn_fwd, gn_bwd, n, seed);
    snprintf(c.name, sizeof c.name, "groupnorm B=%d C=%d HW=%d G=%d", B, C, HW, G);
    memcpy(c.d, (int[4]){B, C, HW, G}, sizeof c.d);
    op_input(&c, n, seed + 1, -1, 1);
    op_input(&c, (size_t)C, seed + 2, 0.5f, 1.5f);
    op_input(&c, (size_t)C, seed + 3, -0.5f, 0.5f);
    c.aux[0] = kernels_alloc((size_t)B * G);
    c.aux[1] = kernels_alloc((size_t)B * G);
    return c;
}

/* out, mean, rstd in double, straight from the definition; bias may be NULL */
static void gn_ref(const op_case *c, const float *bias, double *out, double *mean,
                   double *rstd) {
    int B = c->d[0], C = c->d[1], HW = c->d[2], G = c->d[3], Cg = C / G;
    const float *x = c->in[0], *w = c->in[1];
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            size_t at = ((size_t)b * C + (size_t)g * Cg) * HW, n = (size_t)Cg * HW;
            double m = 0, v = 0;
            for (size_t i = 0; i < n; i++) m += x[at + i];
            m /= (double)n;
            for (size_t i = 0; i < n; i++) v += (x[at + i] - m) * (x[at + i] - m);
            double r = 1.0 / sqrt(v / (double)n + 1e-5);
            mean[b * G + g] = m;
            rstd[b * G + g] = r;
            for (size_t i = 0; i < n; i++) {
                int ch = g * Cg + (int)(i / (size_t)HW);
                out[at + i] = (x[at + i] - m) * r * w[ch] + (bias ? bias[ch] : 0.0);
            }
        }
}

/* forward, mean and rstd against gn_ref, with the case's bias or none; returns the
 * worst output error (the caller decides the tolerance) */
static double gn_forward_error(op_case *c, int with_bias) {
    const float *bias = with_bias ? c->in[2] : NULL;
    int B = c->d[0], G = c->d[3];
    double *out = dalloc(c->n_out), *mean = dalloc((size_t)B * G), *rstd = dalloc((size_t)B * G);
    gn_ref(c, bias, out, mean, rstd);
    for (size_t i = 0; i < c->n_out; i++) c->out[i] = NAN; /* every output must be written */
    groupnorm_forward(c->out, c->aux[0], c->aux[1], c->in[0], c->in[1], bias, B, c->d[1],
                      c->d[2], G);
    double err = gc_max_err(c->out, out, c->n_out);
    double merr = gc_max_err(c->aux[0], mean, (size_t)B * G);
    cr_expect(merr < FWD_TOL, "%s: mean error %g", c->name, merr);
    /* rstd is large for flat groups (316 for a single value): compared relatively */
    double rerr = 0;
    for (int i = 0; i < B * G; i++) {
        double e = fabs(c->aux[1][i] / rstd[i] - 1.0);
        if (!(e <= rerr)) rerr = e;
    }
    cr_expect(rerr < FWD_TOL, "%s: rstd relative error %g", c->name, rerr);
    free(out);
    free(mean);
    free(rstd);
    return err;
}

/* B, C, HW, G: layernorm-like (G=1), instance norm (G=C), odd groups (G=2 of C=6), one
 * value per group, and the U-Net's 7x7 level with its 32 groups */
static const int gn_shapes[][4] = {{3, 4, 9, 1},  {2, 5, 7, 5}, {2, 6, 5, 2},
                                   {1, 3, 1, 3},  {2, 8, 49, 4}, {2, 64, 49, 32},
                                   {1, 7, 37, 7}, {3, 33, 20, 1}};

Test(diff_groupnorm, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    for (size_t s = 0; s < sizeof gn_shapes / sizeof gn_shapes[0]; s++) {
        const int *d = gn_shapes[s];
        op_case c = gn_make(d[0], d[1], d[2], d[3], 10 + s);
        for (int with_bias = 0; with_bias <= 1; with_bias++) {
            double err = gn_forward_error(&c, with_bias);
            cr_expect(err < FWD_TOL, "%s bias=%d: forward error %g", c.name, with_bias, err);
        }
        op_free(&c);
    }
}

Test(diff_groupnorm, forward_is_stable_under_a_large_mean) {
    kernels_set_threads(1);
    op_case c = gn_make(2, 8, 64, 2, 20);
    for (size_t i = 0; i < c.n_in[0]; i++) c.in[0][i] += 1000.0f;
    double err = gn_forward_error(&c, 1);
    cr_expect(err < 5e-4, "groupnorm offset 1000: forward error %g", err);
    op_free(&c);
}

Test(diff_groupnorm, backward_matches_finite_differences) {
    /* G=1, G=C, G=2 with C=6, and a group wider than 16 lanes */
    static const int shapes[][4] = {{2, 4, 5, 1}, {2, 3, 6, 3}, {2, 6, 5, 2}, {1, 4, 20, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        op_case c = gn_make(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 30 + s);
        check_grads(&c);
        op_free(&c);
    }
}

Test(diff_groupnorm, backward_accumulates_and_skips_null) {
    op_case c = gn_make(3, 40, 13, 4, 40);
    check_accumulates_and_null(&c);
    op_free(&c);
}

Test(diff_groupnorm, groups_that_do_not_split_c_abort, .signal = SIGABRT) {
    op_case c = gn_make(1, 6, 4, 4, 45);
    gn_fwd(&c);
}

/* ---- silu ----------------------------------------------------------------------------- */

static void silu_fwd(op_case *c) { silu_forward(c->out, c->in[0], c->n_out); }
static void silu_bwd(op_case *c, float *g[MAXIN]) {
    silu_backward(g[0], c->R, c->in[0], c->n_out);
}

static op_case silu_make(size_t n, uint64_t seed, float range) {
    op_case c = op_new(silu_fwd, silu_bwd, n, seed);
    snprintf(c.name, sizeof c.name, "silu n=%zu", n);
    op_input(&c, n, seed + 1, -range, range);
    return c;
}

static double silu_ref(double x) { return x / (1.0 + exp(-x)); }

static double silu_grad_ref(double x) {
    double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

/* finite values, both sides of the flush threshold at |x| = 80 included */
static const float silu_extremes[] = {0.0f,   -0.0f,  1e-8f,  -1e-8f, 20.0f,  -20.0f,
                                      79.0f,  -79.0f, 80.5f,  -80.5f, 88.0f,  -88.0f,
                                      1e4f,   -1e4f,  1e30f,  -1e30f, 3e38f,  -3e38f};
#define N_EXTREMES (sizeof silu_extremes / sizeof silu_extremes[0])

Test(diff_silu, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    op_case c = silu_make(1000, 50, 8);
    memcpy(c.in[0], silu_extremes, sizeof silu_extremes);
    double *ref = dalloc(c.n_out);
    for (size_t i = 0; i < c.n_out; i++) ref[i] = silu_ref(c.in[0][i]);
    silu_fwd(&c);
    expect_fwd(c.out, ref, c.n_out, "silu");
    silu_forward(c.in[0], c.in[0], c.n_out); /* in place */
    expect_same(c.in[0], c.out, c.n_out, "silu in place");
    /* the limits, and NaN passes through */
    float special[] = {INFINITY, -INFINITY, NAN}, got[3];
    silu_forward(got, special, 3);
    cr_expect(got[0] == INFINITY && got[1] == 0.0f && isnan(got[2]), "%g %g %g", got[0], got[1],
              got[2]);
    free(ref);
    op_free(&c);
}

/* the analytic derivative itself, over the whole range (finite differences cannot reach
 * the tails: there the function is flat to float precision) */
Test(diff_silu, backward_matches_the_exact_derivative) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    size_t n = 2001 + N_EXTREMES;
    float *x = kernels_alloc(n), *ones = kernels_alloc(n), *dx = kernels_alloc(n);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = i < N_EXTREMES ? silu_extremes[i] : -100.0f + 0.1f * (float)(i - N_EXTREMES);
        ones[i] = 1.0f;
        ref[i] = silu_grad_ref(x[i]);
    }
    silu_backward(dx, ones, x, n);
    expect_fwd(dx, ref, n, "silu'");
    float special[] = {INFINITY, -INFINITY, NAN}, one3[] = {1, 1, 1}, d3[3] = {0};
    silu_backward(d3, one3, special, 3);
    cr_expect(d3[0] == 1.0f && d3[1] == 0.0f && isnan(d3[2]), "%g %g %g", d3[0], d3[1], d3[2]);
    free(ref);
    kernels_free(x);
    kernels_free(ones);
    kernels_free(dx);
}

Test(diff_silu, backward_matches_finite_differences) {
    op_case c = silu_make(257, 60, 6);
    check_grads(&c);
    op_free(&c);
}

Test(diff_silu, backward_accumulates_and_skips_null) {
    op_case c = silu_make(1001, 70, 6);
    check_accumulates_and_null(&c);
    op_free(&c);
}

/* ---- upsample2x and avgpool2x2 -------------------------------------------------------- */

static void up_fwd(op_case *c) { upsample2x_forward(c->out, c->in[0], c->d[0], c->d[1], c->d[2]); }
static void up_bwd(op_case *c, float *g[MAXIN]) {
    upsample2x_backward(g[0], c->R, c->d[0], c->d[1], c->d[2]);
}

static op_case up_make(int BC, int Hh, int W, uint64_t seed) {
    size_t n = (size_t)BC * Hh * W;
    op_case c = op_new(up_fwd, up_bwd, 4 * n, seed);
    snprintf(c.name, sizeof c.name, "upsample2x BC=%d H=%d W=%d", BC, Hh, W);
    memcpy(c.d, (int[4]){BC, Hh, W, 0}, sizeof c.d);
    op_input(&c, n, seed + 1, -1, 1);
    return c;
}

static void pool_fwd(op_case *c) { avgpool2x2_forward(c->out, c->in[0], c->d[0], c->d[1], c->d[2]); }
static void pool_bwd(op_case *c, float *g[MAXIN]) {
    avgpool2x2_backward(g[0], c->R, c->d[0], c->d[1], c->d[2]);
}

static op_case pool_make(int BC, int Hh, int W, uint64_t seed) {
    size_t n = (size_t)BC * Hh * W;
    op_case c = op_new(pool_fwd, pool_bwd, n / 4, seed);
    snprintf(c.name, sizeof c.name, "avgpool2x2 BC=%d H=%d W=%d", BC, Hh, W);
    memcpy(c.d, (int[4]){BC, Hh, W, 0}, sizeof c.d);
    op_input(&c, n, seed + 1, -1, 1);
    return c;
}

/* small-map shapes BC, H, W (odd sizes allowed for upsampling), and the U-Net's levels */
static const int up_shapes[][3] = {{3, 5, 7}, {2, 1, 1}, {1, 3, 20}, {4, 7, 7}, {3, 14, 14}};

Test(diff_upsample, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    for (size_t s = 0; s < sizeof up_shapes / sizeof up_shapes[0]; s++) {
        int BC = up_shapes[s][0], Hh = up_shapes[s][1], W = up_shapes[s][2];
        op_case c = up_make(BC, Hh, W, 80 + s);
        double *ref = dalloc(c.n_out);
        for (int p = 0; p < BC; p++)
            for (int y = 0; y < 2 * Hh; y++)
                for (int x = 0; x < 2 * W; x++)
                    ref[((size_t)p * 2 * Hh + y) * 2 * W + x] =
                        c.in[0][((size_t)p * Hh + y / 2) * W + x / 2];
        up_fwd(&c);
        expect_exact(c.out, ref, c.n_out, c.name);
        free(ref);
        op_free(&c);
    }
}

Test(diff_upsample, backward_matches_finite_differences) {
    op_case c = up_make(3, 5, 7, 90);
    check_grads(&c);
    op_free(&c);
}

Test(diff_upsample, backward_accumulates_and_skips_null) {
    op_case c = up_make(5, 7, 9, 95);
    check_accumulates_and_null(&c);
    op_free(&c);
}

Test(diff_avgpool, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    for (size_t s = 0; s < sizeof up_shapes / sizeof up_shapes[0]; s++) {
        int BC = up_shapes[s][0], Hh = 2 * up_shapes[s][1], W = 2 * up_shapes[s][2];
        op_case c = pool_make(BC, Hh, W, 100 + s);
        double *ref = dalloc(c.n_out);
        for (int p = 0; p < BC; p++)
            for (int y = 0; y < Hh / 2; y++)
                for (int x = 0; x < W / 2; x++) {
                    const float *t = c.in[0] + ((size_t)p * Hh + 2 * y) * W + 2 * x;
                    ref[((size_t)p * (Hh / 2) + y) * (W / 2) + x] =
                        0.25 * ((double)t[0] + t[1] + t[W] + t[W + 1]);
                }
        pool_fwd(&c);
        expect_fwd(c.out, ref, c.n_out, c.name);
        free(ref);
        op_free(&c);
    }
}

Test(diff_avgpool, backward_matches_finite_differences) {
    op_case c = pool_make(3, 6, 10, 110);
    check_grads(&c);
    op_free(&c);
}

Test(diff_avgpool, backward_accumulates_and_skips_null) {
    op_case c = pool_make(5, 14, 14, 115);
    check_accumulates_and_null(&c);
    op_free(&c);
}

Test(diff_avgpool, odd_sizes_abort, .signal = SIGABRT) {
    op_case c = pool_make(1, 4, 4, 118);
    avgpool2x2_forward(c.out, c.in[0], 1, 3, 4);
}

/* ---- concat_channels ------------------------------------------------------------------ */

static void cat_fwd(op_case *c) {
    concat_channels_forward(c->out, c->in[0], c->in[1], c->d[0], c->d[1], c->d[2], c->d[3]);
}
static void cat_bwd(op_case *c, float *g[MAXIN]) {
    concat_channels_backward(g[0], g[1], c->R, c->d[0], c->d[1], c->d[2], c->d[3]);
}

static op_case cat_make(int B, int C1, int C2, int HW, uint64_t seed) {
    op_case c = op_new(cat_fwd, cat_bwd, (size_t)B * (C1 + C2) * HW, seed);
    snprintf(c.name, sizeof c.name, "concat B=%d C1=%d C2=%d HW=%d", B, C1, C2, HW);
    memcpy(c.d, (int[4]){B, C1, C2, HW}, sizeof c.d);
    op_input(&c, (size_t)B * C1 * HW, seed + 1, -1, 1);
    op_input(&c, (size_t)B * C2 * HW, seed + 2, -1, 1);
    return c;
}

Test(diff_concat, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(3); /* thread pieces that start and end inside either source */
    static const int shapes[][4] = {{3, 2, 5, 7}, {1, 1, 1, 1}, {2, 7, 3, 49}, {4, 5, 1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *d = shapes[s];
        op_case c = cat_make(d[0], d[1], d[2], d[3], 120 + s);
        int Ct = d[1] + d[2];
        double *ref = dalloc(c.n_out);
        for (int b = 0; b < d[0]; b++)
            for (int ch = 0; ch < Ct; ch++)
                for (int i = 0; i < d[3]; i++)
                    ref[((size_t)b * Ct + ch) * d[3] + i] =
                        ch < d[1] ? c.in[0][((size_t)b * d[1] + ch) * d[3] + i]
                                  : c.in[1][((size_t)b * d[2] + ch - d[1]) * d[3] + i];
        cat_fwd(&c);
        expect_exact(c.out, ref, c.n_out, c.name);
        free(ref);
        op_free(&c);
    }
}

Test(diff_concat, backward_matches_finite_differences) {
    op_case c = cat_make(2, 3, 2, 5, 130);
    check_grads(&c);
    op_free(&c);
}

Test(diff_concat, backward_accumulates_and_skips_null) {
    op_case c = cat_make(3, 4, 3, 10, 135);
    check_accumulates_and_null(&c);
    op_free(&c);
}

/* ---- add_channel ---------------------------------------------------------------------- */

static void addc_fwd(op_case *c) {
    add_channel_forward(c->out, c->in[0], c->in[1], c->d[0], c->d[1], c->d[2]);
}
static void addc_bwd(op_case *c, float *g[MAXIN]) {
    add_channel_backward(g[0], g[1], c->R, c->d[0], c->d[1], c->d[2]);
}

static op_case addc_make(int B, int C, int HW, uint64_t seed) {
    op_case c = op_new(addc_fwd, addc_bwd, (size_t)B * C * HW, seed);
    snprintf(c.name, sizeof c.name, "add_channel B=%d C=%d HW=%d", B, C, HW);
    memcpy(c.d, (int[4]){B, C, HW, 0}, sizeof c.d);
    op_input(&c, (size_t)B * C * HW, seed + 1, -1, 1);
    op_input(&c, (size_t)B * C, seed + 2, -1, 1);
    return c;
}

Test(diff_add_channel, forward_matches_reference_also_in_place) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    op_case c = addc_make(3, 5, 49, 140);
    double *ref = dalloc(c.n_out);
    for (size_t i = 0; i < c.n_out; i++) ref[i] = (double)c.in[0][i] + c.in[1][i / 49];
    addc_fwd(&c);
    expect_fwd(c.out, ref, c.n_out, c.name);
    add_channel_forward(c.in[0], c.in[0], c.in[1], 3, 5, 49);
    expect_same(c.in[0], c.out, c.n_out, "add_channel in place");
    free(ref);
    op_free(&c);
}

Test(diff_add_channel, backward_matches_finite_differences) {
    op_case c = addc_make(2, 3, 21, 150);
    check_grads(&c);
    op_free(&c);
}

Test(diff_add_channel, backward_accumulates_and_skips_null) {
    op_case c = addc_make(3, 7, 37, 155);
    check_accumulates_and_null(&c);
    op_free(&c);
}

/* ---- transpose_chw -------------------------------------------------------------------- */

static void tr_fwd(op_case *c) { transpose_chw_forward(c->out, c->in[0], c->d[0], c->d[1], c->d[2]); }
static void tr_bwd(op_case *c, float *g[MAXIN]) {
    transpose_chw_backward(g[0], c->R, c->d[0], c->d[1], c->d[2]);
}

static op_case tr_make(int B, int C, int HW, uint64_t seed) {
    op_case c = op_new(tr_fwd, tr_bwd, (size_t)B * C * HW, seed);
    snprintf(c.name, sizeof c.name, "transpose_chw B=%d C=%d HW=%d", B, C, HW);
    memcpy(c.d, (int[4]){B, C, HW, 0}, sizeof c.d);
    op_input(&c, (size_t)B * C * HW, seed + 1, -1, 1);
    return c;
}

Test(diff_transpose, forward_and_backward_match_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    /* tiles cut on both sides, a single row or column, and the U-Net's attention maps */
    static const int shapes[][3] = {{2, 5, 7}, {1, 1, 9}, {3, 17, 1}, {2, 33, 49}, {2, 128, 49}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], C = shapes[s][1], HW = shapes[s][2];
        op_case c = tr_make(B, C, HW, 160 + s);
        double *ref = dalloc(c.n_out), *back = dalloc(c.n_out);
        float *g0 = rand_floats(c.n_out, 170 + s, -1, 1), *dinp = copy_of(g0, c.n_out);
        for (int b = 0; b < B; b++)
            for (int ch = 0; ch < C; ch++)
                for (int i = 0; i < HW; i++) {
                    size_t chw = ((size_t)b * C + ch) * HW + i, hwc = ((size_t)b * HW + i) * C + ch;
                    ref[hwc] = c.in[0][chw];
                    back[chw] = (double)(g0[chw] + c.R[hwc]); /* one float add, as the op */
                }
        tr_fwd(&c);
        expect_exact(c.out, ref, c.n_out, c.name);
        transpose_chw_backward(dinp, c.R, B, C, HW);
        expect_exact(dinp, back, c.n_out, c.name);
        free(ref);
        free(back);
        kernels_free(g0);
        kernels_free(dinp);
        op_free(&c);
    }
}

Test(diff_transpose, backward_matches_finite_differences) {
    op_case c = tr_make(2, 5, 7, 180);
    check_grads(&c);
    op_free(&c);
}

Test(diff_transpose, backward_accumulates_and_skips_null) {
    op_case c = tr_make(2, 33, 20, 185);
    check_accumulates_and_null(&c);
    op_free(&c);
}

/* ---- attention_full ------------------------------------------------------------------- */

static void att_fwd(op_case *c) {
    attention_full_forward(c->out, c->aux[0], c->in[0], c->d[0], c->d[1], c->d[2], c->d[3]);
}
static void att_bwd(op_case *c, float *g[MAXIN]) {
    attention_full_backward(g[0], c->R, c->in[0], c->aux[0], c->aux[1], c->d[0], c->d[1],
                            c->d[2], c->d[3]);
}

/* input qkv[B,T,3C] in [-range, range); aux: att[B,NH,T,T], scratch (NaN-filled: the op
 * must not read it before writing it) */
static op_case att_make(int B, int T, int C, int NH, uint64_t seed, float range) {
    op_case c = op_new(att_fwd, att_bwd, (size_t)B * T * C, seed);
    snprintf(c.name, sizeof c.name, "attention_full B=%d T=%d C=%d NH=%d", B, T, C, NH);
    memcpy(c.d, (int[4]){B, T, C, NH}, sizeof c.d);
    op_input(&c, (size_t)B * T * 3 * C, seed + 1, -range, range);
    c.aux[0] = kernels_alloc((size_t)B * NH * T * T);
    size_t ns = attention_scratch_floats(B, T, C, NH);
    c.aux[1] = kernels_alloc(ns);
    for (size_t i = 0; i < ns; i++) c.aux[1][i] = NAN;
    return c;
}

/* out[B,T,C] and att[B,NH,T,T] in double, straight from the definition (no mask) */
static void att_ref(const op_case *c, double *out, double *att) {
    int B = c->d[0], T = c->d[1], C = c->d[2], NH = c->d[3], HS = C / NH;
    const float *qkv = c->in[0];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                double *row = att + (((size_t)b * NH + h) * T + i) * T, mx = -INFINITY, sum = 0;
                const float *q = qkv + ((size_t)b * T + i) * 3 * C + (size_t)h * HS;
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * C + C + (size_t)h * HS;
                    double dot = 0;
                    for (int x = 0; x < HS; x++) dot += (double)q[x] * k[x];
                    row[j] = dot / sqrt((double)HS);
                    mx = fmax(mx, row[j]);
                }
                for (int j = 0; j < T; j++) sum += (row[j] = exp(row[j] - mx));
                for (int j = 0; j < T; j++) row[j] /= sum;
                for (int x = 0; x < HS; x++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        acc += row[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + (size_t)h * HS + x];
                    out[((size_t)b * T + i) * C + (size_t)h * HS + x] = acc;
                }
            }
}

static void att_check_forward(op_case *c) {
    size_t na = (size_t)c->d[0] * c->d[3] * c->d[1] * c->d[1];
    double *out = dalloc(c->n_out), *att = dalloc(na);
    att_ref(c, out, att);
    for (size_t i = 0; i < na; i++) c->aux[0][i] = 7.0f; /* stale values must be overwritten */
    att_fwd(c);
    expect_fwd(c->out, out, c->n_out, c->name);
    expect_fwd(c->aux[0], att, na, c->name);
    free(out);
    free(att);
}

Test(diff_attention_full, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    /* small cases, one head, odd head sizes, T past one 128-row block, the U-Net's level */
    static const int shapes[][4] = {{2, 5, 8, 2},   {1, 1, 4, 1}, {3, 17, 12, 3},
                                    {1, 200, 8, 2}, {2, 49, 128, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        op_case c = att_make(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 200 + s, 1);
        att_check_forward(&c);
        op_free(&c);
    }
}

/* scores of +-100: softmax without the max subtracted would overflow expf */
Test(diff_attention_full, forward_is_stable_for_large_scores) {
    kernels_set_threads(1);
    op_case c = att_make(1, 9, 8, 2, 210, 10);
    att_check_forward(&c);
    op_free(&c);
}

/* A later token's keys and values change every earlier output (unlike attention_forward),
 * and the last query, which sees every key either way, matches the causal op. */
Test(diff_attention_full, is_not_causal) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    op_case c = att_make(2, 6, 8, 2, 220, 1);
    int T = c.d[1], C = c.d[2], t0 = T - 1;
    att_fwd(&c);
    float *full0 = copy_of(c.out, c.n_out), *causal = kernels_alloc(c.n_out);
    attention_forward(causal, c.aux[0], c.in[0], c.d[0], T, C, c.d[3]);
    for (int x = 0; x < C; x++) /* the last row of sequence 0 */
        cr_expect(fabsf(causal[(size_t)t0 * C + x] - full0[(size_t)t0 * C + x]) < FWD_TOL,
                  "last query: causal and full differ at channel %d", x);
    for (int i = 0; i < t0; i++) {
        int same = 1;
        for (int x = 0; x < C; x++) same &= causal[(size_t)i * C + x] == full0[(size_t)i * C + x];
        cr_expect(!same, "out[0,%d] of full attention equals the causal one", i);
    }
    /* new keys and values for the last position of sequence 0, every head */
    for (int x = C; x < 3 * C; x++) c.in[0][(size_t)t0 * 3 * C + x] += 0.5f;
    att_fwd(&c);
    for (int i = 0; i < T; i++) {
        int same = 1;
        for (int x = 0; x < C; x++) same &= c.out[(size_t)i * C + x] == full0[(size_t)i * C + x];
        cr_expect(!same, "out[0,%d] did not see the later token %d", i, t0);
    }
    expect_same(c.out + (size_t)T * C, full0 + (size_t)T * C, (size_t)T * C, "sequence 1");
    kernels_free(full0);
    kernels_free(causal);
    op_free(&c);
}

Test(diff_attention_full, backward_matches_finite_differences) {
    /* small cases, one head, T past one block, and the U-Net's head size 32 at T = 49 */
    static const int shapes[][4] = {{2, 5, 8, 2}, {1, 3, 4, 1}, {1, 150, 4, 2}, {1, 49, 64, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        op_case c = att_make(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 230 + s, 1);
        check_grads(&c);
        op_free(&c);
    }
}

Test(diff_attention_full, backward_accumulates_and_skips_null) {
    op_case c = att_make(2, 6, 8, 2, 240, 1);
    check_accumulates_and_null(&c);
    op_free(&c);
}

Test(diff_attention_full, heads_that_do_not_split_c_abort, .signal = SIGABRT) {
    op_case c = att_make(1, 4, 8, 2, 245, 1);
    attention_full_forward(c.out, c.aux[0], c.in[0], 1, 4, 10, 4);
}

/* ---- mse ------------------------------------------------------------------------------ */

typedef struct {
    size_t n;
    float *pred, *target;
} mse_case;

static double mse_loss(void *ctx) {
    mse_case *m = ctx;
    return mse_forward(m->pred, m->target, m->n);
}

static double mse_ref(const float *p, const float *t, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)p[i] - t[i]) * ((double)p[i] - t[i]);
    return s / (double)n;
}

/* n: a single value, a lane tail, one block, many blocks, the most blocks */
Test(diff_mse, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    static const size_t sizes[] = {1, 17, 5000, 100003, 2000001};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *p = rand_floats(n, 300 + s, -1, 1), *t = rand_floats(n, 310 + s, -1, 1);
        double want = mse_ref(p, t, n), got = mse_forward(p, t, n);
        cr_expect(fabs(got - want) / want < FWD_TOL, "mse n=%zu: %.9g want %.9g", n, got, want);
        kernels_free(p);
        kernels_free(t);
    }
    cr_expect(mse_forward(NULL, NULL, 0) == 0.0f, "mse of nothing");
}

Test(diff_mse, backward_matches_reference_and_finite_differences) {
    kernels_set_threads(1);
    mse_case m = {37, rand_floats(37, 320, -1, 1), rand_floats(37, 321, -1, 1)};
    float *g0 = rand_floats(m.n, 322, -1, 1), *dp = copy_of(g0, m.n);
    double *want = dalloc(m.n);
    float scale = 0.75f;
    for (size_t i = 0; i < m.n; i++)
        want[i] = g0[i] + scale * 2.0 * ((double)m.pred[i] - m.target[i]) / (double)m.n;
    mse_backward(dp, m.pred, m.target, m.n, scale);
    expect_fwd(dp, want, m.n, "mse backward onto g0");
    float *dl = kernels_alloc(m.n); /* scale 1: the gradient of the mean itself */
    mse_backward(dl, m.pred, m.target, m.n, 1.0f);
    expect_grad(mse_loss, &m, m.pred, dl, m.n, "mse dpred");
    mse_backward(NULL, m.pred, m.target, m.n, 1.0f);
    mse_backward(dl, NULL, NULL, 0, 1.0f);
    free(want);
    float *bufs[] = {m.pred, m.target, g0, dp, dl};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) kernels_free(bufs[i]);
}

/* ---- determinism ---------------------------------------------------------------------- */

/* Every op (forward and all gradients) at 1, 2 and 3 threads (forced parallel even at
 * these sizes) gives bit-identical results: no op's summation order depends on the thread
 * count. */
#define N_DET 9

static op_case det_case(int k) {
    switch (k) {
    case 0: return gn_make(5, 40, 37, 4, 400);
    case 1: return silu_make(3001, 401, 6);
    case 2: return up_make(7, 9, 11, 402);
    case 3: return pool_make(7, 18, 22, 403);
    case 4: return cat_make(3, 7, 5, 33, 404);
    case 5: return addc_make(3, 11, 41, 405);
    case 6: return tr_make(3, 37, 45, 406);
    case 7: return att_make(3, 37, 24, 3, 407, 1);
    default: return gn_make(4, 64, 49, 32, 408);
    }
}

/* out and every gradient of case k, one after the other; *n receives the length */
static float *det_run(int k, int threads, size_t *n) {
    kernels_set_threads(threads);
    op_case c = det_case(k);
    float *g[MAXIN];
    grads_alloc(&c, g, (1 << c.nin) - 1);
    op_backward(&c, g);
    *n = c.n_out;
    for (int i = 0; i < c.nin; i++) *n += c.n_in[i];
    float *res = kernels_alloc(*n), *at = res + c.n_out;
    memcpy(res, c.out, c.n_out * sizeof(float));
    for (int i = 0; i < c.nin; i++) {
        memcpy(at, g[i], c.n_in[i] * sizeof(float));
        at += c.n_in[i];
    }
    grads_free(g);
    op_free(&c);
    return res;
}

Test(diff_determinism, results_do_not_depend_on_the_thread_count) {
    kc_force_parallel(1);
    for (int k = 0; k < N_DET; k++) {
        size_t n, m;
        float *one = det_run(k, 1, &n);
        for (int threads = 2; threads <= 3; threads++) {
            float *other = det_run(k, threads, &m);
            char what[64];
            snprintf(what, sizeof what, "case %d at %d threads", k, threads);
            cr_expect(m == n);
            expect_same(other, one, n, what);
            kernels_free(other);
        }
        kernels_free(one);
    }
    size_t n = 300007;
    float *p = rand_floats(n, 410, -1, 1), *t = rand_floats(n, 411, -1, 1);
    kernels_set_threads(1);
    float one = mse_forward(p, t, n);
    for (int threads = 2; threads <= 3; threads++) {
        kernels_set_threads(threads);
        cr_expect(mse_forward(p, t, n) == one, "mse at %d threads", threads);
    }
    kernels_free(p);
    kernels_free(t);
}
