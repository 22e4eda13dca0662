/* channel_ops.cu: the U-Net's channel moves, as kernels/cpu/channel_ops.c: concatenation,
 * the per-channel add, and the [C, HW] <-> [HW, C] transpose. Every output has one writer;
 * the one sum (add_channel's dv) runs in a fixed order. */
#include "common.cuh"

/* out[b, c, s] from a[b, c, s] (c < C1) or b[b, c - C1, s] */
static __global__ void concat_fwd_k(float *out, const float *a, const float *b, size_t n, int C1,
                                    int C2, int HW) {
    GRID_STRIDE(i, n) {
        size_t s = i % HW, row = i / HW;
        int Ct = C1 + C2, c = (int)(row % Ct);
        size_t ex = row / Ct;
        out[i] = c < C1 ? a[(ex * C1 + c) * HW + s] : b[(ex * C2 + (c - C1)) * HW + s];
    }
}

void concat_channels_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                             int HW) {
    size_t n = (size_t)B * (C1 + C2) * HW;
    if (n) LAUNCH(concat_fwd_k, kc_blocks(n), KC_BLOCK, out, a, b, n, C1, C2, HW);
}

/* the adjoint: one thread per element of dout, each adding into its own source element */
static __global__ void concat_bwd_k(float *da, float *db, const float *dout, size_t n, int C1,
                                    int C2, int HW) {
    GRID_STRIDE(i, n) {
        size_t s = i % HW, row = i / HW;
        int Ct = C1 + C2, c = (int)(row % Ct);
        size_t ex = row / Ct;
        if (c < C1) {
            if (da) da[(ex * C1 + c) * HW + s] += dout[i];
        } else if (db) {
            db[(ex * C2 + (c - C1)) * HW + s] += dout[i];
        }
    }
}

void concat_channels_backward(float *da, float *db, const float *dout, int B, int C1, int C2,
                              int HW) {
    size_t n = (size_t)B * (C1 + C2) * HW;
    if ((da || db) && n) LAUNCH(concat_bwd_k, kc_blocks(n), KC_BLOCK, da, db, dout, n, C1, C2, HW);
}

static __global__ void add_channel_k(float *out, const float *inp, const float *v, size_t n,
                                     int HW) {
    GRID_STRIDE(i, n) out[i] = inp[i] + v[i / HW];
}

void add_channel_forward(float *out, const float *inp, const float *v, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    if (n) LAUNCH(add_channel_k, kc_blocks(n), KC_BLOCK, out, inp, v, n, HW);
}

static __global__ void acc_k(float *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}

void add_channel_backward(float *dinp, float *dv, const float *dout, int B, int C, int HW) {
    size_t n = (size_t)B * C * HW;
    if (!n) return;
    if (dinp) LAUNCH(acc_k, kc_blocks(n), KC_BLOCK, dinp, dout, n);
    if (dv) rowsum(dv, 1, B * C, HW, mat_f{dout, HW}); /* dv[b, c] += sum over the row */
}

/* dst[b, s, r] (=|+=) src[b, r, s] for src [B, R, S]: 32x32 tiles through shared memory,
 * so that both the reads and the writes run along rows. 2-D blocks of 32 x 8. */
#define TT 32
static __global__ void transpose_k(float *dst, const float *src, int R, int S, int accumulate) {
    __shared__ float tile[TT][TT + 1]; /* +1: column reads hit 32 different banks */
    size_t base = (size_t)blockIdx.z * R * S;
    int r0 = blockIdx.y * TT, s0 = blockIdx.x * TT;
    for (int k = threadIdx.y; k < TT; k += 8) {
        int r = r0 + k, s = s0 + threadIdx.x;
        if (r < R && s < S) tile[k][threadIdx.x] = src[base + (size_t)r * S + s];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TT; k += 8) {
        int s = s0 + k, r = r0 + threadIdx.x;
        if (r < R && s < S) {
            float *d = dst + base + (size_t)s * R + r;
            *d = accumulate ? *d + tile[threadIdx.x][k] : tile[threadIdx.x][k];
        }
    }
}

static void transpose(float *dst, const float *src, int B, int R, int S, int accumulate) {
    if (B <= 0 || R <= 0 || S <= 0) return;
    dim3 grid((unsigned)(S + TT - 1) / TT, (unsigned)(R + TT - 1) / TT, (unsigned)B);
    LAUNCH(transpose_k, grid, dim3(TT, 8), dst, src, R, S, accumulate);
}

void transpose_chw_forward(float *out, const float *inp, int B, int C, int HW) {
    transpose(out, inp, B, C, HW, 0);
}

void transpose_chw_backward(float *dinp, const float *dout, int B, int C, int HW) {
    if (dinp) transpose(dinp, dout, B, HW, C, 1); /* dinp[b, c, s] += dout[b, s, c] */
}
