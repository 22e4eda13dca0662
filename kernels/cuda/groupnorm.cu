/* groupnorm.cu: group normalisation, as kernels/cpu/groupnorm.c: one block per (example,
 * group), block tree sums (a fixed order), parameter gradients summed over the examples in
 * order, never float atomics. */
#include <math.h>

#include "common.cuh"

#define GN_EPS 1e-5f

static void check_groups(int C, int G, const char *op) {
    if (G <= 0 || C % G != 0) {
        fprintf(stderr, "%s: C = %d channels do not split into G = %d groups\n", op, C, G);
        abort();
    }
}

/* group bg is the contiguous run of Cg HW floats at bg Cg HW (as C = G Cg) */
static __global__ void gn_fwd_k(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int Cg, int HW, int G) {
    int bg = blockIdx.x, c0 = (bg % G) * Cg, n = Cg * HW;
    size_t at = (size_t)bg * n;
    const float *x = inp + at;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    float m = block_sum(s) / (float)n, v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v = fmaf(x[i] - m, x[i] - m, v);
    float r = 1.0f / sqrtf(block_sum(v) / (float)n + GN_EPS);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        int c = c0 + i / HW;
        out[at + i] = fmaf(x[i] - m, r * w[c], b ? b[c] : 0.0f);
    }
    if (threadIdx.x == 0) {
        mean[bg] = m;
        rstd[bg] = r;
    }
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int C, int HW, int G) {
    check_groups(C, G, "groupnorm_forward");
    if (B <= 0 || HW <= 0) return;
    LAUNCH(gn_fwd_k, (unsigned)(B * G), KC_BLOCK, out, mean, rstd, inp, weight, bias, C / G, HW,
           G);
}

/* Per channel row (b, c): s1 = sum_hw dout, s2 = rstd sum_hw (x - mean) dout. They give
 * both the group means of the input gradient and the parameter gradients. */
static __global__ void gn_sums_k(float *s1, float *s2, const float *dout, const float *inp,
                                 const float *mean, const float *rstd, int Cg, int HW) {
    int row = blockIdx.x, bg = row / Cg; /* row = b C + c = (b G + g) Cg + c % Cg */
    size_t at = (size_t)row * HW;
    float m = mean[bg], a = 0.0f, d = 0.0f;
    for (int i = threadIdx.x; i < HW; i += blockDim.x) {
        float g = dout[at + i];
        a += g;
        d = fmaf(inp[at + i] - m, g, d);
    }
    a = block_sum(a);
    d = block_sum(d);
    if (threadIdx.x == 0) {
        s1[row] = a;
        s2[row] = d * rstd[bg];
    }
}

/* dx = rstd w g - rstd mean(g w) - (x - m) rstd^2 mean(g w xhat), per group */
static __global__ void gn_dinp_k(float *dinp, const float *dout, const float *inp,
                                 const float *w, const float *mean, const float *rstd,
                                 const float *s1, const float *s2, int C, int Cg, int HW, int G) {
    int bg = blockIdx.x, c0 = (bg % G) * Cg, n = Cg * HW;
    size_t at = (size_t)bg * n, sc = (size_t)(bg / G) * C + c0;
    float m = mean[bg], r = rstd[bg], mg = 0.0f, mgx = 0.0f;
    for (int c = 0; c < Cg; c++) { /* every thread, the same order: the same values */
        mg = fmaf(w[c0 + c], s1[sc + c], mg);
        mgx = fmaf(w[c0 + c], s2[sc + c], mgx);
    }
    mg /= (float)n;
    mgx /= (float)n;
    float k0 = r * mg, k1 = r * r * mgx;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float a = r * w[c0 + i / HW];
        dinp[at + i] += fmaf(a, dout[at + i], -k0) - (inp[at + i] - m) * k1;
    }
}

/* dst[c] += sum_b src[b, c], b in order from zero: the CPU's order */
static __global__ void sum_examples_k(float *dst, const float *src, int B, int C) {
    GRID_STRIDE(c, C) {
        float acc = 0.0f;
        for (int b = 0; b < B; b++) acc += src[(size_t)b * C + c];
        dst[c] += acc;
    }
}

void groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int C, int HW, int G) {
    if (!dinp && !dweight && !dbias) return;
    check_groups(C, G, "groupnorm_backward");
    if (B <= 0 || HW <= 0) return;
    int Cg = C / G;
    float *s1 = cu_ws(2 * (size_t)B * C), *s2 = s1 + (size_t)B * C;
    LAUNCH(gn_sums_k, (unsigned)(B * C), KC_BLOCK, s1, s2, dout, inp, mean, rstd, Cg, HW);
    if (dinp)
        LAUNCH(gn_dinp_k, (unsigned)(B * G), KC_BLOCK, dinp, dout, inp, weight, mean, rstd, s1,
               s2, C, Cg, HW, G);
    unsigned nb = (unsigned)(C + KC_BLOCK - 1) / KC_BLOCK;
    if (dbias) LAUNCH(sum_examples_k, nb, KC_BLOCK, dbias, s1, B, C);
    if (dweight) LAUNCH(sum_examples_k, nb, KC_BLOCK, dweight, s2, B, C);
}
