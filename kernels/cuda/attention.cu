/* attention.cu: multi-head self-attention, causal and full, as kernels/cpu/attention.c:
 * strided-batched cuBLAS products over one example's heads and a warp-per-row softmax. */
#include <math.h>

#include "common.cuh"

/* Per (batch, head) pair, with Q, K, V the head's [T,HS] slices of qkv (row stride 3C) and
 * s = 1/sqrt(HS):
 *   P = softmax(s Q K^T) (masked to keys <= query when causal; stored in att)
 *   O = P V
 *   dP = dO V^T;  dS = s P (dP - rowsum(P dP));  dQ += dS K;  dK += dS^T Q;  dV += P^T dO
 * The products are strided-batched GEMMs over the heads of one example (head h's slices
 * start h HS floats apart). The causal products are computed in full and the softmax
 * zeroes what lies above the diagonal: simpler, at twice the FLOPs of a blocked version. */

static void check_heads(int C, int NH, const char *op) {
    if (NH <= 0 || C % NH != 0) {
        fprintf(stderr, "%s: C = %d channels do not split into NH = %d heads\n", op, C, NH);
        abort();
    }
}

#define ATT_ROWS (KC_BLOCK / 32) /* rows per block: one warp each */

/* rows of att[rows, T] in place: softmax over the first n entries (n = i + 1 for query i
 * when causal, else T), zeros after */
static __global__ void att_softmax_k(float *att, size_t rows, int T, int causal) {
    size_t row = (size_t)blockIdx.x * ATT_ROWS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return; /* whole warps leave together */
    float *s = att + row * T;
    int n = causal ? (int)(row % T) + 1 : T;
    float m = -INFINITY;
    for (int j = lane; j < n; j += 32) m = s[j] > m ? s[j] : m;
    m = warp_max(m);
    float sum = 0.0f;
    for (int j = lane; j < n; j += 32) {
        float e = expf(s[j] - m);
        s[j] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < T; j += 32) s[j] = j < n ? s[j] * inv : 0.0f;
}

/* rows of ds[rows, T] in place, from dP to dS = scale P (dP - <P, dP>); where P is zero
 * (above the diagonal) dS is zero */
static __global__ void att_softmax_bwd_k(float *ds, const float *p, size_t rows, int T,
                                         float scale) {
    size_t row = (size_t)blockIdx.x * ATT_ROWS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float *d = ds + row * T;
    const float *pr = p + row * T;
    float dot = 0.0f;
    for (int j = lane; j < T; j += 32) dot = fmaf(pr[j], d[j], dot);
    dot = warp_sum(dot);
    for (int j = lane; j < T; j += 32) d[j] = scale * pr[j] * (d[j] - dot);
}

static unsigned att_blocks(size_t rows) { return (unsigned)((rows + ATT_ROWS - 1) / ATT_ROWS); }

static void attention_fwd(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                          int causal, const char *op) {
    check_heads(C, NH, op);
    if (B <= 0 || T <= 0) return;
    int HS = C / NH, C3 = 3 * C;
    long long TT = (long long)T * T;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * C3;
        /* S[h] = scale Q_h K_h^T into att[b, h] */
        rm_gemm_strided(0, 1, T, T, HS, scale, q, C3, HS, q + C, C3, HS, 0.0f,
                        att + (size_t)b * NH * TT, T, TT, NH);
    }
    size_t rows = (size_t)B * NH * T;
    LAUNCH(att_softmax_k, att_blocks(rows), KC_BLOCK, att, rows, T, causal);
    for (int b = 0; b < B; b++) {
        const float *v = qkv + (size_t)b * T * C3 + 2 * C;
        /* O_h = P_h V_h into the head's columns of out[b] */
        rm_gemm_strided(0, 0, T, HS, T, 1.0f, att + (size_t)b * NH * TT, T, TT, v, C3, HS, 0.0f,
                        out + (size_t)b * T * C, C, HS, NH);
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    attention_fwd(out, att, qkv, B, T, C, NH, 1, "attention_forward");
}

void attention_full_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                            int NH) {
    attention_fwd(out, att, qkv, B, T, C, NH, 0, "attention_full_forward");
}

/* dS for one example's heads: NH T x T matrices, reused example by example */
size_t attention_scratch_floats(int B, int T, int C, int NH) {
    check_heads(C, NH, "attention_scratch_floats");
    (void)B;
    return (size_t)NH * T * T;
}

/* the same for both masks: P is zero above the diagonal when causal, so dS is too */
static void attention_bwd(float *dqkv, const float *dout, const float *qkv, const float *att,
                          float *ds, int B, int T, int C, int NH, const char *op) {
    check_heads(C, NH, op);
    if (!dqkv || B <= 0 || T <= 0) return;
    int HS = C / NH, C3 = 3 * C;
    long long TT = (long long)T * T;
    float scale = 1.0f / sqrtf((float)HS);
    size_t rows = (size_t)NH * T;
    for (int b = 0; b < B; b++) {
        size_t at = (size_t)b * T * C3;
        const float *q = qkv + at, *k = q + C, *v = q + 2 * C, *p = att + (size_t)b * NH * TT;
        const float *dO = dout + (size_t)b * T * C;
        float *dq = dqkv + at, *dk = dq + C, *dv = dq + 2 * C;
        /* dP_h = dO_h V_h^T */
        rm_gemm_strided(0, 1, T, T, HS, 1.0f, dO, C, HS, v, C3, HS, 0.0f, ds, T, TT, NH);
        LAUNCH(att_softmax_bwd_k, att_blocks(rows), KC_BLOCK, ds, p, rows, T, scale);
        /* dQ_h += dS_h K_h;  dK_h += dS_h^T Q_h;  dV_h += P_h^T dO_h */
        rm_gemm_strided(0, 0, T, HS, T, 1.0f, ds, T, TT, k, C3, HS, 1.0f, dq, C3, HS, NH);
        rm_gemm_strided(1, 0, T, HS, T, 1.0f, ds, T, TT, q, C3, HS, 1.0f, dk, C3, HS, NH);
        rm_gemm_strided(1, 0, T, HS, T, 1.0f, p, T, TT, dO, C, HS, 1.0f, dv, C3, HS, NH);
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH) {
    attention_bwd(dqkv, dout, qkv, att, scratch, B, T, C, NH, "attention_backward");
}

void attention_full_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             float *scratch, int B, int T, int C, int NH) {
    attention_bwd(dqkv, dout, qkv, att, scratch, B, T, C, NH, "attention_full_backward");
}
