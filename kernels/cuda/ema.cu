/* ema.cu: the moving average of the weights, as kernels/cpu/ema.c. */
#include "common.cuh"

static __global__ void ema_k(float *ema, const float *x, size_t n, float keep, float take) {
    GRID_STRIDE(i, n) ema[i] = keep * ema[i] + take * x[i];
}

void ema_update(float *ema, const float *x, size_t n, float decay) {
    if (n) LAUNCH(ema_k, kc_blocks(n), KC_BLOCK, ema, x, n, decay, 1.0f - decay);
}
