/* layernorm.cu: layer normalisation, as kernels/cpu/layernorm.c. Statistics are warp tree
 * sums (a fixed order); the parameter gradients go through per-chunk partials and ordered
 * column sums, never float atomics, so every result is reproducible. */
#include <math.h>

#include "common.cuh"

#define LN_EPS 1e-5f

#define LN_ROWS (KC_BLOCK / 32) /* rows per block */

static __global__ void ln_fwd_k(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
    int row = blockIdx.x * LN_ROWS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return; /* whole warps leave together: no barrier below */
    const float *x = inp + (size_t)row * C;
    float *o = out + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    float m = warp_sum(s) / (float)C;
    float v = 0.0f; /* two-pass: centred squares do not cancel when |mean| >> std */
    for (int c = lane; c < C; c += 32) v = fmaf(x[c] - m, x[c] - m, v);
    float r = 1.0f / sqrtf(warp_sum(v) / (float)C + LN_EPS);
    for (int c = lane; c < C; c += 32) {
        float y = (x[c] - m) * r * w[c];
        o[c] = b ? y + b[c] : y;
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
    if (N <= 0) return;
    LAUNCH(ln_fwd_k, (unsigned)(N + LN_ROWS - 1) / LN_ROWS, KC_BLOCK, out, mean, rstd, inp,
           weight, bias, N, C);
}

/* dx = rstd (g w - mean(g w) - xhat mean(g w xhat)) for one row per warp */
static __global__ void ln_dinp_k(float *dinp, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd, int N,
                                 int C) {
    int row = blockIdx.x * LN_ROWS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
    float *d = dinp + (size_t)row * C;
    float m = mean[row], r = rstd[row], a1 = 0.0f, a2 = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float gw = g[c] * w[c];
        a1 += gw;
        a2 = fmaf(gw, (x[c] - m) * r, a2);
    }
    float mg = warp_sum(a1) / (float)C, mgx = warp_sum(a2) / (float)C;
    for (int c = lane; c < C; c += 32) {
        float xhat = (x[c] - m) * r;
        d[c] += r * (g[c] * w[c] - mg - xhat * mgx);
    }
}

/* dweight's terms: dout * xhat */
struct ln_dw_f {
    const float *dout, *inp, *mean, *rstd;
    int C;
    __device__ float operator()(int r, int c) const {
        size_t i = (size_t)r * C + c;
        return dout[i] * ((inp[i] - mean[r]) * rstd[r]);
    }
};

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    if (dinp)
        LAUNCH(ln_dinp_k, (unsigned)(N + LN_ROWS - 1) / LN_ROWS, KC_BLOCK, dinp, dout, inp,
               weight, mean, rstd, N, C);
    if (!dweight && !dbias) return;
    /* one scratch serves both sums: the stream runs them one after the other */
    float *part = cu_ws(colsum_part_floats(N, C));
    if (dweight) colsum_add(dweight, part, N, C, ln_dw_f{dout, inp, mean, rstd, C});
    if (dbias) colsum_add(dbias, part, N, C, mat_f{dout, C});
}
