/* test_kernels_activation.c: relu_forward/backward.
 *
 * Tolerances: the forward is exact (a copy or a zero), so it is compared exactly. The
 * gradient check uses inputs at least 0.05 away from the kink at 0, farther than the step
 * h = 1e-2, so both sides of each central difference lie on one linear piece: the only
 * error left is float32 rounding, ~eps_f32 * |L| / h = 1e-5, and GRAD_TOL 1e-3 is safe. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "gradcheck.h"
#include "kernels.h"

#define GRAD_TOL 1e-3
#define H        1e-2

/* n values with |x| in [0.05, 1] and random signs: no input within h of the kink */
static float *away_from_zero(size_t n, uint64_t seed) {
    float *x = kernels_alloc(n), *sign = kernels_alloc(n);
    gc_fill_uniform(x, n, seed, 0.05f, 1.0f);
    gc_fill_uniform(sign, n, seed + 1, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++)
        if (sign[i] < 0) x[i] = -x[i];
    kernels_free(sign);
    return x;
}

typedef struct {
    size_t n;
    float *inp, *out, *R;
} act;

static double relu_loss(void *ctx) {
    act *t = ctx;
    relu_forward(t->out, t->inp, t->n);
    return gc_dot(t->out, t->R, t->n);
}

/* odd lengths: a partial vector at the end, and pieces that are not multiples of 16 */
static const size_t sizes[] = {1, 7, 16, 33, 1000, 200003};
#define NSIZES (sizeof sizes / sizeof sizes[0])

Test(relu, forward_exact_and_in_place) {
    kc_force_parallel(1);
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        for (size_t s = 0; s < NSIZES; s++) {
            size_t n = sizes[s];
            float *x = away_from_zero(n, s), *y = kernels_alloc(n);
            relu_forward(y, x, n);
            int ok = 1;
            for (size_t i = 0; i < n; i++) ok &= y[i] == (x[i] > 0 ? x[i] : 0.0f);
            cr_expect(ok, "n=%zu threads=%d", n, threads);
            relu_forward(x, x, n); /* out may alias inp */
            cr_expect(memcmp(x, y, n * sizeof(float)) == 0, "in place, n=%zu", n);
            kernels_free(x);
            kernels_free(y);
        }
    }
}

Test(relu, backward_matches_finite_differences) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    size_t n = 301;
    act t = {n, away_from_zero(n, 3), kernels_alloc(n), kernels_alloc(n)};
    gc_fill_uniform(t.R, n, 4, -1.0f, 1.0f);
    relu_forward(t.out, t.inp, n);
    float *dinp = kernels_alloc(n);
    relu_backward(dinp, t.R, t.out, n);
    kernels_set_threads(1); /* the many tiny forward passes below need no threads */
    cr_expect(gradcheck(relu_loss, &t, t.inp, dinp, n, H, 1000, GRAD_TOL, "relu dinp") < GRAD_TOL);
    kernels_free(dinp);
    kernels_free(t.inp);
    kernels_free(t.out);
    kernels_free(t.R);
}

Test(relu, backward_accumulates_and_masks_exactly) {
    kc_force_parallel(1);
    for (int threads = 1; threads <= 3; threads++) {
        kernels_set_threads(threads);
        size_t n = 200003;
        float *x = away_from_zero(n, 8), *y = kernels_alloc(n), *dout = kernels_alloc(n);
        float *g0 = kernels_alloc(n), *d = kernels_alloc(n);
        gc_fill_uniform(dout, n, 9, -1.0f, 1.0f);
        gc_fill_uniform(g0, n, 10, -1.0f, 1.0f);
        dout[1] = INFINITY; /* a dead unit's gradient must not leak, even a non-finite one */
        x[1] = -1.0f;
        relu_forward(y, x, n);
        memcpy(d, g0, n * sizeof(float));
        relu_backward(d, dout, y, n);
        relu_backward(d, dout, y, n);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            float want = y[i] > 0 ? (g0[i] + dout[i]) + dout[i] : g0[i];
            ok &= d[i] == want;
        }
        cr_expect(ok, "threads=%d: dinp != g0 + 2 * masked dout", threads);
        kernels_free(x);
        kernels_free(y);
        kernels_free(dout);
        kernels_free(g0);
        kernels_free(d);
    }
}
