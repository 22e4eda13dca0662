/* test_kernels_linear.c: linear_forward/backward against a double-precision reference and
 * central finite differences.
 *
 * Tolerances (see gradcheck.h for the error model):
 *  FWD_TOL 2e-5: each output is a float32 sum of C <= 100 products of O(1) numbers; its
 *    rounding error grows like sqrt(C) * eps_f32 * |partial sums|, ~1e-6 (2e-6 observed).
 *  GRAD_TOL 1e-3: the op is linear in each argument, so the central difference has no
 *    truncation error; what remains is float32 rounding of the few outputs a perturbation
 *    touches, ~eps_f32 * |L| / h = 1e-5 (3e-6 observed). A wrong index or sign gives an
 *    O(1) error.
 *  ACC_TOL 1e-6: accumulating onto existing gradients changes only the last rounding. */
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
#define ACC_TOL  1e-6
#define H        1e-2

typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *R; /* R: the fixed projection, L = <out, R> */
} lin;

static lin lin_make(int N, int C, int OC, uint64_t seed) {
    lin t = {N, C, OC, NULL, NULL, NULL, NULL, NULL};
    t.inp = rand_floats((size_t)N * C, seed, -1.0f, 1.0f);
    t.w = rand_floats((size_t)OC * C, seed + 1, -1.0f, 1.0f);
    t.b = rand_floats((size_t)OC, seed + 2, -1.0f, 1.0f);
    t.R = rand_floats((size_t)N * OC, seed + 3, -1.0f, 1.0f);
    t.out = kernels_alloc((size_t)N * OC);
    return t;
}

static void lin_free(lin *t) {
    kernels_free(t->inp);
    kernels_free(t->w);
    kernels_free(t->b);
    kernels_free(t->R);
    kernels_free(t->out);
}

/* out[n,o] = b[o] + sum_c inp[n,c] w[o,c], in double */
static double *lin_ref(const lin *t, int with_bias) {
    double *ref = malloc(sizeof(double) * (size_t)t->N * t->OC);
    for (int n = 0; n < t->N; n++)
        for (int o = 0; o < t->OC; o++) {
            double s = with_bias ? t->b[o] : 0.0;
            for (int c = 0; c < t->C; c++)
                s += (double)t->inp[(size_t)n * t->C + c] * t->w[(size_t)o * t->C + c];
            ref[(size_t)n * t->OC + o] = s;
        }
    return ref;
}

static double lin_loss(void *ctx) {
    lin *t = ctx;
    linear_forward(t->out, t->inp, t->w, t->b, t->N, t->C, t->OC);
    return gc_dot(t->out, t->R, (size_t)t->N * t->OC);
}

/* the three gradients of L = <out, R> (dout = R), each buffer freshly zeroed */
typedef struct {
    float *dinp, *dw, *db;
} lin_grads;

static lin_grads grads_alloc(const lin *t) {
    lin_grads g = {kernels_alloc((size_t)t->N * t->C), kernels_alloc((size_t)t->OC * t->C),
                   kernels_alloc((size_t)t->OC)};
    return g;
}

static void grads_free(lin_grads *g) {
    kernels_free(g->dinp);
    kernels_free(g->dw);
    kernels_free(g->db);
}

static void backward(const lin *t, lin_grads *g) {
    linear_backward(g->dinp, g->dw, g->db, t->R, t->inp, t->w, t->N, t->C, t->OC);
}

static const int shapes[][3] = {{3, 5, 7}, {1, 1, 1}, {2, 3, 1}, {37, 70, 33}, {64, 100, 24}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

Test(linear, forward_matches_reference_at_every_thread_count) {
    kc_force_parallel(1); /* tiny shapes still take the threaded paths */
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t s = 0; s < NSHAPES; s++) {
            lin t = lin_make(shapes[s][0], shapes[s][1], shapes[s][2], 100 + s);
            for (int with_bias = 0; with_bias <= 1; with_bias++) {
                double *ref = lin_ref(&t, with_bias);
                linear_forward(t.out, t.inp, t.w, with_bias ? t.b : NULL, t.N, t.C, t.OC);
                double err = gc_max_err(t.out, ref, (size_t)t.N * t.OC);
                cr_expect(err < FWD_TOL, "N=%d C=%d OC=%d bias=%d threads=%d: err %g", t.N, t.C,
                          t.OC, with_bias, threads, err);
                free(ref);
            }
            lin_free(&t);
        }
    }
}

static void check_grads(int N, int C, int OC, int threads) {
    kernels_set_threads(threads);
    lin t = lin_make(N, C, OC, 7 * N + C);
    lin_grads g = grads_alloc(&t);
    backward(&t, &g);
    /* the many forward passes below run alone: a parallel region per tiny forward pass
     * only slows the suite down on a loaded machine; threaded forwards are checked above */
    kernels_set_threads(1);
    char what[64];
    snprintf(what, sizeof what, "linear %dx%dx%d dinp", N, C, OC);
    cr_expect(gradcheck(lin_loss, &t, t.inp, g.dinp, (size_t)N * C, H, 400, GRAD_TOL, what) <
              GRAD_TOL);
    snprintf(what, sizeof what, "linear %dx%dx%d dw", N, C, OC);
    cr_expect(gradcheck(lin_loss, &t, t.w, g.dw, (size_t)OC * C, H, 400, GRAD_TOL, what) <
              GRAD_TOL);
    snprintf(what, sizeof what, "linear %dx%dx%d db", N, C, OC);
    cr_expect(gradcheck(lin_loss, &t, t.b, g.db, (size_t)OC, H, 400, GRAD_TOL, what) < GRAD_TOL);
    grads_free(&g);
    lin_free(&t);
}

Test(linear, backward_matches_finite_differences) {
    kc_force_parallel(1);
    check_grads(3, 5, 7, 1);
    check_grads(3, 5, 7, 2);
    check_grads(1, 1, 1, 2);
    check_grads(6, 17, 11, 3);
}

Test(linear, backward_accumulates) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    lin t = lin_make(5, 9, 6, 41);
    lin_grads once = grads_alloc(&t), twice = grads_alloc(&t), onto = grads_alloc(&t);
    backward(&t, &once);
    backward(&t, &twice);
    backward(&t, &twice);
    /* onto buffers that already hold something: g0 + g, not g */
    size_t n_inp = (size_t)t.N * t.C, n_w = (size_t)t.OC * t.C, n_b = (size_t)t.OC;
    float *g0 = rand_floats(n_inp + n_w + n_b, 99, -1.0f, 1.0f);
    memcpy(onto.dinp, g0, n_inp * sizeof(float));
    memcpy(onto.dw, g0 + n_inp, n_w * sizeof(float));
    memcpy(onto.db, g0 + n_inp + n_w, n_b * sizeof(float));
    backward(&t, &onto);

    expect_sum(twice.dinp, once.dinp, once.dinp, n_inp, ACC_TOL, "dinp twice");
    expect_sum(twice.dw, once.dw, once.dw, n_w, ACC_TOL, "dw twice");
    expect_sum(twice.db, once.db, once.db, n_b, ACC_TOL, "db twice");
    expect_sum(onto.dinp, g0, once.dinp, n_inp, ACC_TOL, "dinp onto g0");
    expect_sum(onto.dw, g0 + n_inp, once.dw, n_w, ACC_TOL, "dw onto g0");
    expect_sum(onto.db, g0 + n_inp + n_w, once.db, n_b, ACC_TOL, "db onto g0");
    kernels_free(g0);
    grads_free(&once);
    grads_free(&twice);
    grads_free(&onto);
    lin_free(&t);
}

Test(linear, null_gradients_skip_their_work_only) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    lin t = lin_make(4, 6, 5, 17);
    lin_grads all = grads_alloc(&t);
    backward(&t, &all);
    size_t n[3] = {(size_t)t.N * t.C, (size_t)t.OC * t.C, (size_t)t.OC};
    /* every subset of the three gradients: the requested ones equal the full call's */
    for (int mask = 0; mask < 8; mask++) {
        lin_grads some = grads_alloc(&t);
        float *keep[3] = {some.dinp, some.dw, some.db};
        float *want[3] = {all.dinp, all.dw, all.db};
        linear_backward(mask & 1 ? some.dinp : NULL, mask & 2 ? some.dw : NULL,
                        mask & 4 ? some.db : NULL, t.R, t.inp, t.w, t.N, t.C, t.OC);
        for (int k = 0; k < 3; k++) {
            int requested = mask >> k & 1;
            for (size_t i = 0; i < n[k]; i++)
                if (keep[k][i] != (requested ? want[k][i] : 0.0f)) {
                    cr_expect(0, "mask %d gradient %d [%zu]: %g", mask, k, i, keep[k][i]);
                    break;
                }
        }
        grads_free(&some);
    }
    grads_free(&all);
    lin_free(&t);
}

Test(linear, deterministic_for_a_thread_count) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    lin t = lin_make(37, 70, 33, 5);
    lin_grads a = grads_alloc(&t), b = grads_alloc(&t);
    float *out2 = kernels_alloc((size_t)t.N * t.OC);
    linear_forward(t.out, t.inp, t.w, t.b, t.N, t.C, t.OC);
    linear_forward(out2, t.inp, t.w, t.b, t.N, t.C, t.OC);
    backward(&t, &a);
    backward(&t, &b);
    cr_expect(memcmp(t.out, out2, sizeof(float) * t.N * t.OC) == 0);
    cr_expect(memcmp(a.dinp, b.dinp, sizeof(float) * t.N * t.C) == 0);
    cr_expect(memcmp(a.dw, b.dw, sizeof(float) * t.OC * t.C) == 0);
    cr_expect(memcmp(a.db, b.db, sizeof(float) * t.OC) == 0);
    kernels_free(out2);
    grads_free(&a);
    grads_free(&b);
    lin_free(&t);
}
