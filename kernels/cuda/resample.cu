/* resample.cu: nearest-neighbour 2x upsampling, as kernels/cpu/resample.c, and the two
 * 2x2-block loops it shares with average pooling (pool.cu): gather (small pixel = scale x
 * its block's sum, (top pair) + (bottom pair)) and spread (each big pixel = scale x its
 * small pixel). One thread per output element. */
#include "common.cuh"

/* small[i] (=|+=) scale * ((top pair) + (bottom pair)) of its window in big[.., 2 OW] */
static __global__ void gather_k(float *small, const float *big, size_t n, int OW, float scale,
                                int accumulate) {
    GRID_STRIDE(i, n) {
        size_t at = window_at(i, OW), W = 2 * (size_t)OW;
        float v = scale * ((big[at] + big[at + 1]) + (big[at + W] + big[at + W + 1]));
        small[i] = accumulate ? small[i] + v : v;
    }
}

/* big[j] (=|+=) scale * its window's small pixel; one thread per big pixel */
static __global__ void spread_k(float *big, const float *small, size_t n, int OW, float scale,
                                int accumulate) {
    GRID_STRIDE(j, n) {
        size_t W = 2 * (size_t)OW, r = j / W, x = j % W;
        float v = scale * small[(r / 2) * OW + x / 2];
        big[j] = accumulate ? big[j] + v : v;
    }
}

void cu_resample2x(float *dst, const float *src, size_t n, int OW, float scale, int accumulate,
                   int gather) {
    if (!n) return;
    if (gather) LAUNCH(gather_k, kc_blocks(n), KC_BLOCK, dst, src, n, OW, scale, accumulate);
    else LAUNCH(spread_k, kc_blocks(n), KC_BLOCK, dst, src, n, OW, scale, accumulate);
}

void upsample2x_forward(float *out, const float *inp, int BC, int H, int W) {
    cu_resample2x(out, inp, (size_t)BC * (2 * H) * (2 * W), W, 1.0f, 0, 0);
}

void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W) {
    if (dinp) cu_resample2x(dinp, dout, (size_t)BC * H * W, W, 1.0f, 1, 1);
}
