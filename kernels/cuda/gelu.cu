/* gelu.cu: GELU, tanh approximation, with the formulas and the flush to zero of
 * kernels/cpu/gelu.c (see there for the algebra). One thread per element. */
#include <math.h>

#include "common.cuh"

#define GELU_K0 0.7978845608f
#define GELU_K1 0.044715f
#define GELU_FLUSH -43.0f

static __global__ void gelu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float u = GELU_K0 * (x + GELU_K1 * x * x * x);
        float y = x / (1.0f + expf(-2.0f * u));
        out[i] = u < GELU_FLUSH ? 0.0f : y;
    }
}

void gelu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(gelu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

static __global__ void gelu_bwd_k(float *dinp, const float *dout, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i], x2 = x * x;
        float u = GELU_K0 * (x + GELU_K1 * x2 * x);
        float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x2);
        float e = expf(-2.0f * u);
        float s = 1.0f / (1.0f + e);
        float grad = s + 2.0f * x * s * (e * s) * du;
        dinp[i] += dout[i] * (u < GELU_FLUSH ? 0.0f : grad);
    }
}

void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n) LAUNCH(gelu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n);
}
