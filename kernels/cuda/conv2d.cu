/* conv2d.cu: 2-D convolution, as kernels/cpu/conv2d.c computes it: im2col and cuBLAS
 * products, in chunks of images so that the columns of a whole batch never exist at once;
 * the input gradient gathered back (col2im) without atomics. */
#include "common.cuh"

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
