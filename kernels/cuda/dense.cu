/* dense.cu: the ops built on GEMMs: linear, conv2d (im2col + cuBLAS) and multi-head
 * attention (causal and full). cuBLAS runs on the backend's one stream, which keeps its
 * results deterministic; the sums around it (bias gradients) are ordered sums. */
#include <math.h>

#include "common.cuh"

/* out[n, o] = b[o]: the bias goes in first and the GEMM adds onto it (beta = 1) */
static __global__ void fill_rows_k(float *out, const float *b, size_t n, int cols) {
    GRID_STRIDE(i, n) out[i] = b[i % cols];
}

/* ---- linear ------------------------------------------------------------------------- */

void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    if (N <= 0 || OC <= 0) return;
    size_t n = (size_t)N * OC;
    if (b) LAUNCH(fill_rows_k, kc_blocks(n), KC_BLOCK, out, b, n, OC);
    /* out[N,OC] (+)= inp[N,C] . w[OC,C]^T */
    rm_gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, b ? 1.0f : 0.0f, out, OC);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    /* dinp[N,C] += dout[N,OC] . w[OC,C] */
    if (dinp) rm_gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw[OC,C] += dout^T . inp */
    if (dw) rm_gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (db) colsum_add(db, cu_ws(colsum_part_floats(N, OC)), N, OC, mat_f{dout, OC});
}

/* ---- conv2d --------------------------------------------------------------------------- */

/* Images go in chunks of nb, so that the columns of a whole batch (C K K x OH OW floats per
 * image, hundreds of MB for a U-Net level) never need to exist at once. The chunk depends
 * on the shapes only: the caller sizes the scratch before any call. */
#define CONV_CHUNK_FLOATS ((size_t)1 << 24)

typedef struct {
    int C, H, W, OC, K, pad, OH, OW, CKK, OHW;
} conv_shape;

static conv_shape shape_of(int C, int H, int W, int OC, int K, int pad) {
    conv_shape s = {C, H, W, OC, K, pad, 0, 0, 0, 0};
    s.OH = H + 2 * pad - K + 1;
    s.OW = W + 2 * pad - K + 1;
    s.CKK = C * K * K;
    s.OHW = s.OH * s.OW;
    return s;
}

/* images per chunk; the scratch holds their columns and their permuted output gradient */
static int conv_chunk(int B, const conv_shape *s) {
    size_t per = (size_t)(s->CKK + s->OC) * s->OHW, nb = per ? CONV_CHUNK_FLOATS / per : 1;
    if (nb < 1) nb = 1;
    return nb < (size_t)B ? (int)nb : B;
}

size_t conv2d_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return 0;
    conv_shape s = shape_of(C, H, W, OC, K, pad);
    return (size_t)conv_chunk(B, &s) * (s.CKK + s.OC) * s.OHW;
}

/* col[i istride + r rstride + p] = padded image i of the chunk at (c, oy + ky, ox + kx),
 * with r = (c, ky, kx) and p = (oy, ox): one thread per column element */
static __global__ void im2col_k(float *col, const float *inp, conv_shape s, int nb,
                                size_t istride, size_t rstride) {
    size_t per = (size_t)s.CKK * s.OHW;
    GRID_STRIDE(idx, nb * per) {
        size_t i = idx / per;
        int r = (int)(idx % per / s.OHW), p = (int)(idx % s.OHW);
        int c = r / (s.K * s.K), ky = r / s.K % s.K, kx = r % s.K;
        int iy = p / s.OW + ky - s.pad, ix = p % s.OW + kx - s.pad;
        float v = 0.0f;
        if (iy >= 0 && iy < s.H && ix >= 0 && ix < s.W)
            v = inp[((i * s.C + c) * s.H + iy) * s.W + ix];
        col[i * istride + r * rstride + p] = v;
    }
}

static void im2col(float *col, const float *inp, const conv_shape *s, int nb, size_t istride,
                   size_t rstride) {
    size_t n = (size_t)nb * s->CKK * s->OHW;
    LAUNCH(im2col_k, kc_blocks(n), KC_BLOCK, col, inp, *s, nb, istride, rstride);
}

/* out[b, oc, p] = bias[oc] for the whole batch, before the GEMMs add onto it */
static __global__ void fill_channels_k(float *out, const float *bias, size_t n, int OC, int OHW) {
    GRID_STRIDE(i, n) out[i] = bias[i / OHW % OC];
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *scratch,
                    int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return;
    conv_shape s = shape_of(C, H, W, OC, K, pad);
    size_t img = (size_t)C * H * W, oimg = (size_t)OC * s.OHW;
    if (b) LAUNCH(fill_channels_k, kc_blocks(B * oimg), KC_BLOCK, out, b, B * oimg, OC, s.OHW);
    int nb = conv_chunk(B, &s);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        /* columns image by image: [n][CKK][OHW] */
        im2col(scratch, inp + (size_t)b0 * img, &s, n, (size_t)s.CKK * s.OHW, (size_t)s.OHW);
        /* out_i[OC,OHW] (+)= w[OC,CKK] . col_i[CKK,OHW], w shared by the batch (stride 0) */
        rm_gemm_strided(0, 0, OC, s.OHW, s.CKK, 1.0f, w, s.CKK, 0, scratch, s.OHW,
                        (long long)s.CKK * s.OHW, b ? 1.0f : 0.0f, out + (size_t)b0 * oimg, s.OHW,
                        (long long)oimg, n);
    }
}

/* dperm[oc, i OHW + p] = dout[i, oc, p] for the n images of a chunk: the chunk's output
 * gradient as one [OC, n OHW] matrix, so that dw and the columns' gradient are one GEMM
 * each instead of one per image */
static __global__ void permute_dout_k(float *dperm, const float *dout, int n, int OC, int OHW) {
    size_t per = (size_t)OC * OHW;
    GRID_STRIDE(idx, n * per) {
        size_t i = idx / per, oc = idx % per / OHW, p = idx % OHW;
        dperm[oc * ((size_t)n * OHW) + i * OHW + p] = dout[idx];
    }
}

/* dinp[i, c, iy, ix] += the column entries that read it, (ky, kx) in order: a gather, so
 * each input element has one writer (no atomics) and a fixed order. dcol is
 * [CKK][n OHW]. */
static __global__ void col2im_k(float *dinp, const float *dcol, conv_shape s, int n) {
    size_t img = (size_t)s.C * s.H * s.W, ld = (size_t)n * s.OHW;
    GRID_STRIDE(idx, n * img) {
        size_t i = idx / img;
        int c = (int)(idx % img / ((size_t)s.H * s.W)), iy = (int)(idx % ((size_t)s.H * s.W)) / s.W,
            ix = (int)(idx % s.W);
        float acc = 0.0f;
        for (int ky = 0; ky < s.K; ky++) {
            int oy = iy + s.pad - ky;
            if (oy < 0 || oy >= s.OH) continue;
            for (int kx = 0; kx < s.K; kx++) {
                int ox = ix + s.pad - kx;
                if (ox < 0 || ox >= s.OW) continue;
                size_t r = ((size_t)c * s.K + ky) * s.K + kx;
                acc += dcol[r * ld + i * s.OHW + (size_t)oy * s.OW + ox];
            }
        }
        dinp[idx] += acc;
    }
}

/* one chunk of n images starting at image b0 */
static void conv_backward_chunk(float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, float *scratch,
                                const conv_shape *s, int n) {
    size_t ld = (size_t)n * s->OHW, per = (size_t)s->OC * s->OHW;
    float *col = scratch, *dperm = scratch + (size_t)s->CKK * ld;
    LAUNCH(permute_dout_k, kc_blocks(n * per), KC_BLOCK, dperm, dout, n, s->OC, s->OHW);
    if (db) rowsum(db, 1, s->OC, (int)ld, mat_f{dperm, (int)ld});
    if (dw) {
        /* columns side by side: [CKK][n OHW] */
        im2col(col, inp, s, n, (size_t)s->OHW, ld);
        /* dw[OC,CKK] += dperm[OC, n OHW] . col[CKK, n OHW]^T */
        rm_gemm(0, 1, s->OC, s->CKK, (int)ld, 1.0f, dperm, (int)ld, col, (int)ld, 1.0f, dw,
                s->CKK);
    }
    if (dinp) {
        /* dcol[CKK, n OHW] = w[OC,CKK]^T . dperm, over the columns (dw has read them) */
        rm_gemm(1, 0, s->CKK, (int)ld, s->OC, 1.0f, w, s->CKK, dperm, (int)ld, 0.0f, col,
                (int)ld);
        size_t m = (size_t)n * s->C * s->H * s->W;
        LAUNCH(col2im_k, kc_blocks(m), KC_BLOCK, dinp, col, *s, n);
    }
}

void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, float *scratch, int B, int C, int H, int W, int OC, int K,
                     int pad) {
    if (B <= 0 || (!dinp && !dw && !db)) return;
    conv_shape s = shape_of(C, H, W, OC, K, pad);
    size_t img = (size_t)C * H * W, oimg = (size_t)OC * s.OHW;
    int nb = conv_chunk(B, &s);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        conv_backward_chunk(dinp ? dinp + (size_t)b0 * img : NULL, dw, db,
                            dout + (size_t)b0 * oimg, inp + (size_t)b0 * img, w, scratch, &s, n);
    }
}

/* ---- attention ------------------------------------------------------------------------ */

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
