/* gelu.c: GELU, tanh approximation, fused into one pass each way.
 *
 * 0.5 (1 + tanh(u)) is the logistic sigmoid of 2u, so with e = exp(-2u):
 *   gelu(x)  = x s,                      s = 1 / (1 + e)
 *   gelu'(x) = s + x (1 - tanh^2 u)/2 u' = s + 2 x s (e s) u',   u' = du/dx
 * where 1 - s is written e s (no cancellation as s -> 1). One exp per element, and
 * vm_expf (vecmath.h) lets the loops vectorize: libm's tanhf would keep them scalar.
 * Below u = GELU_FLUSH, vm_expf's clamp would leave s at ~1e-38 instead of ~e^{2u}, and the
 * x^3 growth of x u' would inflate that into a visible gradient (1e-27 at x = -1e4, O(1) by
 * x = -1e13). The true value and derivative there are below 1e-35, so both are flushed to
 * zero. */
#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define GELU_K0 0.7978845608f /* sqrt(2/pi) */
#define GELU_K1 0.044715f
#define GELU_FLUSH -43.0f /* -2u > 86: past vm_expf's clamp at 87 less a margin */
#define GELU_GRAIN 32768.0 /* elements per thread: one exp each, ~10 us */

/* out[lo:hi] = gelu(inp[lo:hi]); out may alias inp (elementwise, one read per write) */
static void gelu_range(float *out, const float *inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float u = GELU_K0 * (x + GELU_K1 * x * x * x);
        float y = x / (1.0f + vm_expf(-2.0f * u));
        out[i] = u < GELU_FLUSH ? 0.0f : y; /* this way round a NaN passes through */
    }
}

void gelu_forward(float *out, const float *inp, size_t n) {
    int nt = kc_threads_for((double)n, GELU_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        gelu_range(out, inp, lo, hi);
    }
}

/* dinp[lo:hi] += dout * gelu'(inp) */
static void gelu_grad_range(float *restrict dinp, const float *restrict dout,
                            const float *restrict inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) {
        float x = inp[i];
        float x2 = x * x;
        float u = GELU_K0 * (x + GELU_K1 * x2 * x);
        float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x2);
        float e = vm_expf(-2.0f * u);
        float s = 1.0f / (1.0f + e);
        float grad = s + 2.0f * x * s * (e * s) * du;
        dinp[i] += dout[i] * (u < GELU_FLUSH ? 0.0f : grad);
    }
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (!dinp) return;
    int nt = kc_threads_for((double)n, GELU_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        gelu_grad_range(dinp, dout, inp, lo, hi);
    }
}
