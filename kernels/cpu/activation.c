/* activation.c: elementwise nonlinearities. Memory-bound: the threads only help once the
 * tensor outgrows one core's cache, hence the large grain. */
#include "cpu.h"
#include "kernels.h"

#define ELEM_GRAIN 65536.0

/* out[n] = max(inp[n], 0); out may alias inp, so no restrict here */
static void relu_range(float *out, const float *inp, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_forward(float *out, const float *inp, size_t n) {
    int nt = kc_threads_for((double)n, ELEM_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        relu_range(out, inp, lo, hi);
    }
}

/* dinp[n] += dout[n] * (out[n] > 0), as a select so NaN/inf in dout of dead units stay out */
static void relu_grad_range(float *restrict dinp, const float *restrict dout,
                            const float *restrict out, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    int nt = kc_threads_for((double)n, ELEM_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        relu_grad_range(dinp, dout, out, lo, hi);
    }
}
