/* silu.c: SiLU (swish), out = x sigmoid(x), fused into one pass each way.
 *
 * With e = exp(-x) and s = 1 / (1 + e):
 *   silu(x)  = x s
 *   silu'(x) = s + x s (1 - s) = s (1 + x e s)
 * where 1 - s is written e s (no cancellation as s -> 1). One exp per element, through
 * vm_expf (vecmath.h) so that the loops vectorize; libm's expf would keep them scalar.
 * vm_expf clamps its argument to [-87, 88], so beyond |x| = 87 the formulas would see a
 * constant e instead of exp(-x): x s and x e s then grow linearly in x and reach O(1)
 * errors for |x| near 1e38. Past |x| = SILU_FLUSH the exact values are within 1e-33 of
 * their limits (0 below, x and 1 above), so the limits are used there. */
#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define SILU_FLUSH 80.0f   /* |x| * exp(-|x|) < 1e-33 beyond */
#define SILU_GRAIN 32768.0 /* elements per thread: one exp each, ~10 us */

/* out[lo:hi] = silu(inp[lo:hi]); out may alias inp (elementwise, one read per write) */
static void silu_range(float *out, const float *inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float y = x / (1.0f + vm_expf(-x));
        out[i] = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? x : y); /* NaN passes via y */
    }
}

void silu_forward(float *out, const float *inp, size_t n) {
    int nt = kc_threads_for((double)n, SILU_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        silu_range(out, inp, lo, hi);
    }
}

/* dinp[lo:hi] += dout * silu'(inp) */
static void silu_grad_range(float *restrict dinp, const float *restrict dout,
                            const float *restrict inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float e = vm_expf(-x);
        float s = 1.0f / (1.0f + e);
        float grad = s * fmaf(x, e * s, 1.0f);
        grad = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? 1.0f : grad);
        dinp[i] += dout[i] * grad;
    }
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (!dinp) return;
    int nt = kc_threads_for((double)n, SILU_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        silu_grad_range(dinp, dout, inp, lo, hi);
    }
}
