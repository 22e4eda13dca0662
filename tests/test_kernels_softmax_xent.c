/* test_kernels_softmax_xent.c: softmax + cross-entropy, forward and backward.
 *
 * Tolerances:
 *  FWD_TOL 1e-5: probabilities and losses come from a handful of float32 exp/div/log steps
 *    on O(1) values (errors of a few eps_f32), the mean from a double sum of N floats.
 *  GRAD_TOL 2e-3: the loss is smooth; with h = 1e-2 the central difference has truncation
 *    error h^2/6 * |L'''| ~ 2e-5, and the float32 loss adds eps_f32 * |L| / h ~ 2e-5
 *    (losses are O(1)); 5e-5 observed. A wrong sign or a missing 1/N gives O(0.1..1) errors.
 *  ACC_TOL 1e-6: accumulating onto existing values changes only the last rounding. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"

#define FWD_TOL  1e-5
#define GRAD_TOL 2e-3
#define ACC_TOL  1e-6
#define H        1e-2

typedef struct {
    int N, V;
    float scale;
    float *logits, *probs, *losses;
    int32_t *targets;
} xent;

static xent xent_make(int N, int V, float spread, uint64_t seed) {
    xent t = {N, V, 1.0f / (N > 0 ? N : 1), NULL, NULL, NULL, NULL};
    t.logits = kernels_alloc((size_t)N * V);
    gc_fill_uniform(t.logits, (size_t)N * V, seed, -spread, spread);
    t.probs = kernels_alloc((size_t)N * V);
    t.losses = kernels_alloc((size_t)N);
    t.targets = malloc(sizeof(int32_t) * (N > 0 ? N : 1));
    for (int n = 0; n < N; n++) t.targets[n] = (int32_t)((n * 7 + 3) % V);
    return t;
}

static void xent_free(xent *t) {
    kernels_free(t->logits);
    kernels_free(t->probs);
    kernels_free(t->losses);
    free(t->targets);
}

/* reference in double: probs, per-row losses, and their mean */
static double xent_ref(const xent *t, double *probs, double *losses) {
    double total = 0;
    for (int n = 0; n < t->N; n++) {
        const float *x = t->logits + (size_t)n * t->V;
        double m = x[0], z = 0;
        for (int v = 1; v < t->V; v++) m = fmax(m, x[v]);
        for (int v = 0; v < t->V; v++) z += exp((double)x[v] - m);
        for (int v = 0; v < t->V; v++) probs[(size_t)n * t->V + v] = exp((double)x[v] - m) / z;
        losses[n] = log(z) - ((double)x[t->targets[n]] - m);
        total += losses[n];
    }
    return t->N > 0 ? total / t->N : 0.0;
}

/* N, V, logit spread: odd sizes, a single class, rows long enough to thread, and logits
 * large enough that exp() without the max shift would overflow float32 */
static const struct {
    int N, V;
    float spread;
} cases[] = {{3, 5, 3.0f},   {1, 1, 1.0f},    {7, 10, 5.0f},
             {64, 10, 2.0f}, {5, 3001, 4.0f}, {4, 6, 200.0f}};
#define NCASES (sizeof cases / sizeof cases[0])

Test(softmax_xent, forward_matches_reference) {
    kc_force_parallel(1);
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t c = 0; c < NCASES; c++) {
            xent t = xent_make(cases[c].N, cases[c].V, cases[c].spread, 50 + c);
            size_t n = (size_t)t.N * t.V;
            double *probs = malloc(sizeof(double) * n), *losses = malloc(sizeof(double) * t.N);
            double mean = xent_ref(&t, probs, losses);
            float got = softmax_xent_forward(t.probs, t.losses, t.logits, t.targets, t.N, t.V);
            cr_expect(gc_max_err(t.probs, probs, n) < FWD_TOL, "probs, case %zu threads %d", c,
                      threads);
            cr_expect(gc_max_err(t.losses, losses, (size_t)t.N) < FWD_TOL, "losses, case %zu", c);
            cr_expect(fabs(got - mean) / fmax(1.0, fabs(mean)) < FWD_TOL, "mean %g vs %g", got,
                      mean);
            free(probs);
            free(losses);
            xent_free(&t);
        }
    }
}

Test(softmax_xent, shift_invariant_and_finite_for_huge_logits) {
    kernels_set_threads(1);
    xent a = xent_make(3, 5, 3.0f, 1), b = xent_make(3, 5, 3.0f, 1);
    for (size_t i = 0; i < 15; i++) b.logits[i] += 1000.0f; /* exp(1000) overflows */
    float la = softmax_xent_forward(a.probs, a.losses, a.logits, a.targets, 3, 5);
    float lb = softmax_xent_forward(b.probs, b.losses, b.logits, b.targets, 3, 5);
    cr_expect(isfinite(lb));
    /* +1000 costs the logits ~3 digits (ulp(1000) = 6e-5), hence the looser bound */
    cr_expect(fabsf(la - lb) < 1e-3f, "%g vs %g", la, lb);
    for (size_t i = 0; i < 15; i++) cr_expect(fabsf(a.probs[i] - b.probs[i]) < 1e-3f);
    xent_free(&a);
    xent_free(&b);
}

Test(softmax_xent, empty_batch_has_zero_loss) {
    xent t = xent_make(0, 4, 1.0f, 2);
    cr_expect(softmax_xent_forward(t.probs, t.losses, t.logits, t.targets, 0, 4) == 0.0f);
    xent_free(&t);
}

/* L = scale * sum_n losses[n]: the loss whose gradient backward returns */
static double xent_loss(void *ctx) {
    xent *t = ctx;
    softmax_xent_forward(t->probs, t->losses, t->logits, t->targets, t->N, t->V);
    double s = 0;
    for (int n = 0; n < t->N; n++) s += t->losses[n];
    return t->scale * s;
}

static void check_grads(int N, int V, float scale) {
    xent t = xent_make(N, V, 3.0f, 9 * N + V);
    t.scale = scale;
    size_t n = (size_t)N * V;
    float *dlogits = kernels_alloc(n);
    softmax_xent_forward(t.probs, t.losses, t.logits, t.targets, N, V);
    softmax_xent_backward(dlogits, t.probs, t.targets, N, V, scale);
    int threads = kernels_get_threads();
    kernels_set_threads(1); /* the many tiny forward passes below need no threads */
    char what[64];
    snprintf(what, sizeof what, "softmax_xent N=%d V=%d scale=%g", N, V, scale);
    cr_expect(gradcheck(xent_loss, &t, t.logits, dlogits, n, H, 400, GRAD_TOL, what) < GRAD_TOL);
    kernels_set_threads(threads);
    kernels_free(dlogits);
    xent_free(&t);
}

Test(softmax_xent, backward_matches_finite_differences) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    check_grads(3, 5, 1.0f / 3);
    check_grads(7, 10, 1.0f / 7);
    check_grads(2, 4, 2.5f); /* a scale that is not 1/N */
}

Test(softmax_xent, backward_accumulates) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    xent t = xent_make(5, 7, 2.0f, 77);
    size_t n = 35;
    float *once = kernels_alloc(n), *onto = kernels_alloc(n), *g0 = kernels_alloc(n);
    gc_fill_uniform(g0, n, 78, -1.0f, 1.0f);
    memcpy(onto, g0, n * sizeof(float));
    softmax_xent_forward(t.probs, t.losses, t.logits, t.targets, 5, 7);
    softmax_xent_backward(once, t.probs, t.targets, 5, 7, 0.2f);
    softmax_xent_backward(onto, t.probs, t.targets, 5, 7, 0.2f);
    softmax_xent_backward(onto, t.probs, t.targets, 5, 7, 0.2f);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)g0[i] + 2.0 * once[i];
        worst = fmax(worst, fabs(onto[i] - want) / fmax(1.0, fabs(want)));
    }
    cr_expect(worst < ACC_TOL, "err %g", worst);
    kernels_free(once);
    kernels_free(onto);
    kernels_free(g0);
    xent_free(&t);
}

Test(softmax_xent, bad_target_aborts, .signal = SIGABRT) {
    xent t = xent_make(2, 3, 1.0f, 5);
    t.targets[1] = 3;
    softmax_xent_forward(t.probs, t.losses, t.logits, t.targets, 2, 3);
}
