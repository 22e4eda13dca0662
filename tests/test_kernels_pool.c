/* test_kernels_pool.c: maxpool2x2_forward/backward.
 *
 * Tolerances: pooling only selects and routes values, so forward and backward are compared
 * exactly against the reference (each input receives at most one gradient per call, so
 * even the accumulated sums round identically). The gradient check uses inputs that are
 * all distinct and at least 0.05 apart, farther than 2h = 2e-2, so no perturbation changes
 * a window's argmax; what is left is float32 rounding in L, ~eps_f32 * |L| / h, far below
 * GRAD_TOL 1e-3. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"
#include "testutil.h"

#define GRAD_TOL 1e-3
#define H_STEP   1e-2

/* BC, H, W: odd plane counts, one window per row, rows of 16+ windows (two runs), enough
 * rows to need two chunks of the staging buffers, rows too wide for them, and LeNet's. */
static const int shapes[][3] = {{3, 4, 6},  {1, 2, 2},    {5, 6, 10},       {30, 8, 20},
                                {2, 4, 34}, {1, 2, 4100}, {64 * 6, 28, 28}, {64 * 16, 10, 10}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* window (p, y, x) in row-major window order a b / c d; the first maximum wins ties */
static size_t ref_argmax(const float *inp, int H, int W, int p, int y, int x) {
    size_t top = ((size_t)p * H + 2 * y) * W + 2 * x;
    size_t cand[4] = {top, top + 1, top + W, top + W + 1};
    size_t best = cand[0];
    for (int k = 1; k < 4; k++)
        if (inp[cand[k]] > inp[best]) best = cand[k];
    return best;
}

/* x[i] = 0.05 * (a permutation of 0..n-1) - offset: distinct, 0.05 apart */
static float *spaced(size_t n, size_t stride_prime) {
    float *x = kernels_alloc(n);
    for (size_t i = 0; i < n; i++) x[i] = 0.05f * (float)(i * stride_prime % n) - 0.025f * n;
    return x;
}

static void check_shape(int BC, int H, int W, const float *inp, uint64_t seed) {
    size_t n_in = (size_t)BC * H * W, n_out = n_in / 4;
    float *out = kernels_alloc(n_out), *dout = rand_floats(n_out, seed, -1.0f, 1.0f);
    float *g0 = rand_floats(n_in, seed + 1, -1.0f, 1.0f);
    float *dinp = kernels_alloc(n_in), *want = kernels_alloc(n_in);
    maxpool2x2_forward(out, inp, BC, H, W);
    memcpy(dinp, g0, n_in * sizeof(float));
    maxpool2x2_backward(dinp, dout, inp, BC, H, W);
    maxpool2x2_backward(dinp, dout, inp, BC, H, W); /* accumulates */
    memcpy(want, g0, n_in * sizeof(float));
    int fwd_ok = 1;
    for (int p = 0; p < BC; p++)
        for (int y = 0; y < H / 2; y++)
            for (int x = 0; x < W / 2; x++) {
                size_t o = ((size_t)p * (H / 2) + y) * (W / 2) + x,
                       a = ref_argmax(inp, H, W, p, y, x);
                fwd_ok &= out[o] == inp[a];
                want[a] = (want[a] + dout[o]) + dout[o];
            }
    cr_expect(fwd_ok, "forward BC=%d H=%d W=%d threads=%d", BC, H, W, kernels_get_threads());
    cr_expect(memcmp(dinp, want, n_in * sizeof(float)) == 0, "backward BC=%d H=%d W=%d threads=%d",
              BC, H, W, kernels_get_threads());
    kernels_free(out);
    kernels_free(dout);
    kernels_free(g0);
    kernels_free(dinp);
    kernels_free(want);
}

Test(maxpool, matches_reference_exactly_at_every_thread_count) {
    kc_force_parallel(1);
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t s = 0; s < NSHAPES; s++) {
            int BC = shapes[s][0], H = shapes[s][1], W = shapes[s][2];
            float *inp = rand_floats((size_t)BC * H * W, 10 + s, -1.0f, 1.0f);
            check_shape(BC, H, W, inp, 20 + s);
            kernels_free(inp);
        }
    }
}

Test(maxpool, ties_go_to_the_first_element) {
    kernels_set_threads(1);
    /* one row of 6 windows (H=2, W=12); window k's values a b / c d */
    const float win[6][4] = {{1, 1, 1, 1}, {0, 2, 1, 2},     {0, 1, 3, 3},
                             {5, 0, 1, 5}, {-1, -1, -2, -1}, {0, -0.0f, 0, 0}};
    float inp[24], out[6], dout[6] = {1, 2, 3, 4, 5, 6}, dinp[24] = {0};
    for (int k = 0; k < 6; k++) {
        inp[2 * k] = win[k][0];
        inp[2 * k + 1] = win[k][1];
        inp[12 + 2 * k] = win[k][2];
        inp[12 + 2 * k + 1] = win[k][3];
    }
    maxpool2x2_forward(out, inp, 1, 2, 12);
    maxpool2x2_backward(dinp, dout, inp, 1, 2, 12);
    const int first[6] = {0, 1, 2, 0, 0, 0}; /* a=0 b=1 c=2 d=3 */
    for (int k = 0; k < 6; k++) {
        int at[4] = {2 * k, 2 * k + 1, 12 + 2 * k, 12 + 2 * k + 1};
        cr_expect(out[k] == win[k][first[k]], "window %d: max %g", k, out[k]);
        for (int e = 0; e < 4; e++)
            cr_expect(dinp[at[e]] == (e == first[k] ? dout[k] : 0.0f),
                      "window %d element %d got %g", k, e, dinp[at[e]]);
    }
}

typedef struct {
    int BC, H, W;
    float *inp, *out, *R;
} pool;

static double pool_loss(void *ctx) {
    pool *t = ctx;
    maxpool2x2_forward(t->out, t->inp, t->BC, t->H, t->W);
    return gc_dot(t->out, t->R, (size_t)t->BC * t->H * t->W / 4);
}

static void gradcheck_shape(int BC, int H, int W, int threads) {
    kernels_set_threads(threads);
    size_t n = (size_t)BC * H * W;
    pool t = {BC, H, W, spaced(n, 7919), kernels_alloc(n / 4), rand_floats(n / 4, 3, -1.0f, 1.0f)};
    float *dinp = kernels_alloc(n);
    maxpool2x2_backward(dinp, t.R, t.inp, BC, H, W);
    kernels_set_threads(1); /* the many tiny forward passes below need no threads */
    char what[64];
    snprintf(what, sizeof what, "maxpool %dx%dx%d dinp", BC, H, W);
    cr_expect(gradcheck(pool_loss, &t, t.inp, dinp, n, H_STEP, 600, GRAD_TOL, what) < GRAD_TOL);
    kernels_free(dinp);
    kernels_free(t.inp);
    kernels_free(t.out);
    kernels_free(t.R);
}

Test(maxpool, backward_matches_finite_differences) {
    kc_force_parallel(1);
    gradcheck_shape(3, 4, 6, 2);
    gradcheck_shape(2, 4, 34, 3);
}

Test(maxpool, odd_sizes_abort, .signal = SIGABRT) {
    float inp[12] = {0}, out[3];
    maxpool2x2_forward(out, inp, 1, 3, 4);
}
