/* pool.cu: 2x2 pooling, stride 2, as kernels/cpu/pool.c: max pooling with the CPU's tie
 * rule, and average pooling on the block loops of resample.cu. One thread per window (max)
 * or per output element (average), so every output has one writer. */
#include "common.cuh"

static void check_even(const char *op, int H, int W) {
    if (H % 2 || W % 2) {
        fprintf(stderr, "%s: H=%d and W=%d must both be even\n", op, H, W);
        abort();
    }
}

/* ---- max pooling -------------------------------------------------------------------- */

/* The window's first maximum in row-major order, with the CPU's tie rule: the larger of
 * each horizontal pair (left on ties), then of the two winners (top on ties). */
static __device__ __forceinline__ size_t window_argmax(const float *in, size_t at, int W) {
    size_t top = in[at + 1] > in[at] ? at + 1 : at;
    size_t bot = in[at + W + 1] > in[at + W] ? at + W + 1 : at + W;
    return in[bot] > in[top] ? bot : top;
}

static __global__ void maxpool_fwd_k(float *out, const float *inp, size_t n, int W) {
    GRID_STRIDE(i, n) out[i] = inp[window_argmax(inp, window_at(i, W / 2), W)];
}

void maxpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_forward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    if (n) LAUNCH(maxpool_fwd_k, kc_blocks(n), KC_BLOCK, out, inp, n, W);
}

/* each window belongs to one thread, so its four inputs have one writer */
static __global__ void maxpool_bwd_k(float *dinp, const float *dout, const float *inp, size_t n,
                                     int W) {
    GRID_STRIDE(i, n) dinp[window_argmax(inp, window_at(i, W / 2), W)] += dout[i];
}

void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_backward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    if (dinp && n) LAUNCH(maxpool_bwd_k, kc_blocks(n), KC_BLOCK, dinp, dout, inp, n, W);
}

/* ---- average pooling ---------------------------------------------------------------- */

void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("avgpool2x2_forward", H, W);
    size_t n = (size_t)BC * (H / 2) * (W / 2);
    cu_resample2x(out, inp, n, W / 2, 0.25f, 0, 1);
}

void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W) {
    check_even("avgpool2x2_backward", H, W);
    size_t n = (size_t)BC * H * W;
    if (dinp) cu_resample2x(dinp, dout, n, W / 2, 0.25f, 1, 0);
}
