/* activation.cu: ReLU, as kernels/cpu/activation.c. One thread per element (grid-stride),
 * one writer per output. */
#include "common.cuh"

static __global__ void relu_fwd_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_forward(float *out, const float *inp, size_t n) {
    if (n) LAUNCH(relu_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n);
}

/* a select, not a product: NaN/inf in the gradient of a dead unit stays out */
static __global__ void relu_bwd_k(float *dinp, const float *dout, const float *out, size_t n) {
    GRID_STRIDE(i, n) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    if (dinp && n) LAUNCH(relu_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, out, n);
}
