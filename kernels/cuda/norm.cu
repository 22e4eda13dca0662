/* norm.cu: the ops that normalise along rows or groups: layernorm, groupnorm and the
 * softmax fused with cross-entropy. Statistics are block or warp tree sums (fixed order);
 * parameter gradients go through per-row partials and ordered column sums, never float
 * atomics, so every result is reproducible. Formulas follow kernels/cpu. */
#include <math.h>

#include "common.cuh"

#define NORM_EPS 1e-5f

/* ---- layernorm: one warp per row --------------------------------------------------- */

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
    float r = 1.0f / sqrtf(warp_sum(v) / (float)C + NORM_EPS);
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

/* ---- groupnorm: one block per (example, group) ----------------------------------------- */

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
    float r = 1.0f / sqrtf(block_sum(v) / (float)n + NORM_EPS);
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

/* ---- softmax + cross-entropy: one block per row ----------------------------------------- */

/* probs = softmax(x) (max subtracted first, sum in double); the loss from the log-sum-exp,
 * which stays finite for a confidently wrong row where log(probs[t]) would not */
static __global__ void xent_fwd_k(float *probs, float *losses, const float *logits,
                                  const int32_t *targets, int V, int *err) {
    int row = blockIdx.x, t = targets[row];
    const float *x = logits + (size_t)row * V;
    float *p = probs + (size_t)row * V;
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = x[v] > m ? x[v] : m;
    m = block_max(m);
    double s = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float e = expf(x[v] - m);
        p[v] = e;
        s += e;
    }
    s = block_sum(s);
    float inv = (float)(1.0 / s);
    for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] *= inv;
    if (threadIdx.x != 0) return;
    if (t < 0 || t >= V) {
        losses[row] = __int_as_float(0x7fc00000); /* NaN */
        atomicOr(err, CU_ERR_TARGET);
        return;
    }
    losses[row] = (float)(log(s) - ((double)x[t] - (double)m));
}

/* per-block partial sums of x[n] in double, for an ordered total (cu_sum_to_host) */
static __global__ void sum_f64_k(double *part, const float *x, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

float softmax_xent_forward(float *probs, float *losses, const float *logits,
                           const int32_t *targets, int N, int V) {
    if (N <= 0) return 0.0f;
    LAUNCH(xent_fwd_k, (unsigned)N, KC_BLOCK, probs, losses, logits, targets, V, cu_err_flag());
    unsigned nb = kc_blocks((size_t)N);
    double *part = (double *)cu_ws(2 * (size_t)nb);
    LAUNCH(sum_f64_k, nb, KC_BLOCK, part, losses, (size_t)N);
    return (float)(cu_sum_to_host(part, (int)nb) / N);
}

/* dlogits += scale (probs - onehot); the target entry in one rounding, as on the CPU. A
 * target outside [0, V) matches no entry (and was reported by the forward pass). */
static __global__ void xent_bwd_k(float *dlogits, const float *probs, const int32_t *targets,
                                  size_t n, int V, float scale) {
    GRID_STRIDE(i, n) {
        int v = (int)(i % V), t = targets[i / V];
        float p = probs[i];
        dlogits[i] += v == t ? scale * (p - 1.0f) : scale * p;
    }
}

void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int N,
                           int V, float scale) {
    size_t n = (size_t)N * V;
    if (dlogits && n) LAUNCH(xent_bwd_k, kc_blocks(n), KC_BLOCK, dlogits, probs, targets, n, V,
                             scale);
}
