/* silu.cu: SiLU, with the formulas and the flushes at the limits of kernels/cpu/silu.c.
 * One thread per element. */
#include <math.h>

#include "common.cuh"

#define SILU_FLUSH 80.0f

static __global__ void silu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float y = x / (1.0f + expf(-x));
        out[i] = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? x : y);
    }
}

void silu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(silu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

static __global__ void silu_bwd_k(float *dinp, const float *dout, const float *inp, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i];
        float e = expf(-x);
        float s = 1.0f / (1.0f + e);
        float grad = s * fmaf(x, e * s, 1.0f);
        grad = x < -SILU_FLUSH ? 0.0f : (x > SILU_FLUSH ? 1.0f : grad);
        dinp[i] += dout[i] * grad;
    }
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (dinp && n) LAUNCH(silu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n);
}
