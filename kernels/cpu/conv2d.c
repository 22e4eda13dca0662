/* conv2d.c: 2-D convolution (square kernel, stride 1, zero padding) as GEMMs over the
 * image's columns (im2col), image by image. Two shapes go elsewhere: layers with one input
 * or one output channel to direct convolution (conv2d_direct.c, AVX-512 builds), other 3x3
 * kernels with padding 1 to Winograd (conv3x3_winograd.c).
 *
 * Each thread takes a contiguous run of images and works in its own slot of the caller's
 * scratch: the image copied into a zero-bordered buffer, from which kc_sgemm_cols reads the
 * columns (packing them straight from the image where the GEMM is ours, building them in
 * the slot where it is OpenBLAS's), and the slot's partial dw and db.
 *
 *   forward  out = w . cols(x) + b
 *   dw      += dout . cols(x)^T
 *   dx      += col2im(w^T . dout)
 *
 * For dx the adjoint of im2col is cheaper here than convolving dout with the flipped kernel:
 * LeNet's layers have few input channels (1 and 6), and the flipped convolution would pack
 * OC*K*K rows of columns to produce C rows of output. Per-thread dw/db partials are summed in
 * thread order at the end, so results depend only on the thread count. 1x1 kernels without
 * padding need no columns: the image is its own. */
#include <string.h>

#include "cpu.h"
#include "kernels.h"

/* Slots are per thread, so the scratch size must not depend on the thread count, which
 * may change after the caller sized it: threads beyond this share nothing and sit out. */
#define CONV_MAX_SLOTS 16
/* multiply-adds per thread below which a thread is not worth waking */
#define CONV_GRAIN 262144.0
/* col2im adds whole 16-float runs (see add_run) */
#define RUN 16

/* 1x1, no padding: the image is its own columns */
static inline int pointwise(const kc_conv_shape *s) { return s->K == 1 && s->pad == 0; }

static kc_cols cols_of_input(const float *pad, const kc_conv_shape *s) {
    return (kc_cols){pad, s->C, s->K, s->PH, s->PW, s->OH, s->OW};
}

/* One thread's slot. dpad carries RUN floats of slack: add_run writes whole runs. */
typedef struct {
    float *pad;  /* [C,PH,PW] the image with a zero border */
    float *dpad; /* [C,PH,PW] gradient w.r.t. pad */
    float *col;  /* [CKK,OHW] the columns where OpenBLAS multiplies them; dcol for dx */
    float *dw;   /* [OC,CKK] partial */
    float *db;   /* [OC] partial */
} conv_slot;

static size_t pad_floats(const kc_conv_shape *s) {
    return kc_round16((size_t)s->C * s->PH * s->PW);
}
static size_t dpad_floats(const kc_conv_shape *s) {
    return kc_round16((size_t)s->C * s->PH * s->PW + RUN);
}
static size_t col_floats(const kc_conv_shape *s) { /* col2im reads whole runs: RUN of slack */
    return pointwise(s) ? 0 : kc_round16((size_t)s->CKK * s->OHW + RUN);
}
static size_t slot_floats(const kc_conv_shape *s) {
    return pad_floats(s) + dpad_floats(s) + col_floats(s) + kc_round16((size_t)s->OC * s->CKK) +
           kc_round16((size_t)s->OC);
}
static int slots_for(int B) { return B < CONV_MAX_SLOTS ? B : CONV_MAX_SLOTS; }

static conv_slot slot_at(float *scratch, const kc_conv_shape *s, int i) {
    conv_slot sl;
    sl.pad = scratch + (size_t)i * slot_floats(s);
    sl.dpad = sl.pad + pad_floats(s);
    sl.col = sl.dpad + dpad_floats(s);
    sl.dw = sl.col + col_floats(s);
    sl.db = sl.dw + kc_round16((size_t)s->OC * s->CKK);
    return sl;
}

/* 3x3 with padding 1, the U-Net's convolutions, go to Winograd F(4x4, 3x3) */
static int winograd(int K, int pad) { return K == 3 && pad == 1; }

size_t conv2d_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return 0;
#ifdef __AVX512F__
    if (conv_direct_applies(C, OC, K, pad)) return conv_direct_scratch_floats(B, C, H, W, OC, K, pad);
#endif
    if (winograd(K, pad)) return winograd3x3_scratch_floats(B, C, H, W, OC);
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad);
    return (size_t)slots_for(B) * slot_floats(&s);
}

/* dst[n, h+2p, w+2p] interior = src[n, h, w]; the border was zeroed once per call and stays
 * zero */
static void stage(float *restrict dst, const float *restrict src, int n, int h, int w, int p) {
    int ph = h + 2 * p, pw = w + 2 * p;
    if (p == 0) {
        memcpy(dst, src, (size_t)n * h * w * sizeof(float));
        return;
    }
    for (int c = 0; c < n; c++)
        for (int y = 0; y < h; y++)
            memcpy(dst + ((size_t)c * ph + y + p) * pw + p, src + ((size_t)c * h + y) * w,
                   (size_t)w * sizeof(float));
}

/* d[0:n) += s[0:n) in whole runs; the tail of the last run adds zeros, leaving d as it
 * was. Unrolled, GCC turns the select into branches; kept as a loop it becomes one masked
 * vector add per run. */
static inline void add_run(float *restrict d, const float *restrict s, int n) {
    for (int j0 = 0; j0 < n; j0 += RUN) {
        int left = n - j0;
#pragma GCC unroll 1
        for (int j = 0; j < RUN; j++) {
            float v = s[j0 + j]; /* loaded unconditionally, so the select needs no branch */
            d[j0 + j] += j < left ? v : 0.0f;
        }
    }
}

/* dpad[c, y+ky, x+kx] = sum of dcol[(c,ky,kx), (y,x)]: the adjoint of im2col.
 * Short rows go in masked runs, even rows first, then odd: a run on row y reaches into
 * row y+1, and reading what the previous iteration has just stored stalls store-to-load
 * forwarding (3x slower for LeNet's conv2). Rows of two runs or more add plainly. */
static void col2im(float *restrict dpad, const float *restrict dcol, const kc_conv_shape *s) {
    int KK = s->K * s->K, OH = s->OH, OW = s->OW;
    memset(dpad, 0, pad_floats(s) * sizeof(float));
    for (int r = 0; r < s->CKK; r++) {
        int c = r / KK, ky = r % KK / s->K, kx = r % s->K;
        float *dst = dpad + ((size_t)c * s->PH + ky) * s->PW + kx;
        const float *src = dcol + (size_t)r * s->OHW;
        if (OW >= 2 * RUN) {
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) dst[(size_t)y * s->PW + x] += src[y * OW + x];
            continue;
        }
        for (int y = 0; y < OH; y += 2) add_run(dst + (size_t)y * s->PW, src + y * OW, OW);
        for (int y = 1; y < OH; y += 2) add_run(dst + (size_t)y * s->PW, src + y * OW, OW);
    }
}

/* dx[C,H,W] += interior of dpad[C,PH,PW] */
static void unstage_add(float *restrict dx, const float *restrict dpad, const kc_conv_shape *s) {
    for (int c = 0; c < s->C; c++)
        for (int iy = 0; iy < s->H; iy++) {
            float *d = dx + ((size_t)c * s->H + iy) * s->W;
            const float *p = dpad + ((size_t)c * s->PH + iy + s->pad) * s->PW + s->pad;
            for (int ix = 0; ix < s->W; ix++) d[ix] += p[ix];
        }
}

static int conv_threads(int B, const kc_conv_shape *s) {
    int nt = kc_threads_for((double)B * s->OC * s->CKK * s->OHW, CONV_GRAIN);
    return nt < slots_for(B) ? nt : slots_for(B);
}

/* ---- forward -------------------------------------------------------------------------- */

/* out[b] = w . cols(inp[b]) + bias for images b in [b0, b1) */
static void forward_images(float *out, const float *inp, const float *w, const float *b,
                           conv_slot *sl, const kc_conv_shape *s, int b0, int b1) {
    if (!pointwise(s)) memset(sl->pad, 0, pad_floats(s) * sizeof(float));
    kc_cols cols = cols_of_input(sl->pad, s);
    for (int i = b0; i < b1; i++) {
        const float *x = inp + (size_t)i * s->C * s->H * s->W;
        float *y = out + (size_t)i * s->OC * s->OHW; /* [OC, OHW] */
        if (b)
            for (int oc = 0; oc < s->OC; oc++)
                for (int p = 0; p < s->OHW; p++) y[(size_t)oc * s->OHW + p] = b[oc];
        float beta = b ? 1.0f : 0.0f;
        if (pointwise(s)) {
            kc_sgemm(0, 0, s->OC, s->OHW, s->CKK, 1.0f, w, s->CKK, x, s->OHW, beta, y, s->OHW);
            continue;
        }
        stage(sl->pad, x, s->C, s->H, s->W, s->pad);
        kc_sgemm_cols(0, s->OC, w, s->CKK, &cols, beta, y, s->OHW, sl->col);
    }
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *scratch,
                    int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return;
#ifdef __AVX512F__
    if (conv_direct_applies(C, OC, K, pad)) {
        conv_direct_forward(out, inp, w, b, scratch, B, C, H, W, OC, K, pad);
        return;
    }
#endif
    if (winograd(K, pad)) {
        winograd3x3_forward(out, inp, w, b, scratch, B, C, H, W, OC);
        return;
    }
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad);
    int nt = conv_threads(B, &s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int b0, b1;
        kc_split(B, KC_NT(), KC_TID(), &b0, &b1);
        conv_slot sl = slot_at(scratch, &s, KC_TID());
        forward_images(out, inp, w, b, &sl, &s, b0, b1);
    }
}

/* ---- backward ------------------------------------------------------------------------- */

typedef struct {
    float *dinp, *dw, *db; /* any may be NULL */
    const float *dout, *inp, *w;
} backward_args;

/* Image i: dinp directly (a thread's images are its own), dw and db into the slot's
 * partials. */
static void backward_image(const backward_args *g, conv_slot *sl, const kc_conv_shape *s, int i) {
    const float *dy = g->dout + (size_t)i * s->OC * s->OHW; /* [OC, OHW] */
    const float *x = g->inp + (size_t)i * s->C * s->H * s->W;
    if (g->db)
        for (int oc = 0; oc < s->OC; oc++)
            sl->db[oc] += kc_sum_lanes(dy + (size_t)oc * s->OHW, s->OHW);
    if (g->dw) {
        if (pointwise(s)) { /* dw[OC,C] += dy[OC,OHW] . x[C,OHW]^T */
            kc_sgemm(0, 1, s->OC, s->CKK, s->OHW, 1.0f, dy, s->OHW, x, s->OHW, 1.0f, sl->dw, s->CKK);
        } else {
            kc_cols cols = cols_of_input(sl->pad, s);
            stage(sl->pad, x, s->C, s->H, s->W, s->pad);
            kc_sgemm_cols(1, s->OC, dy, s->OHW, &cols, 1.0f, sl->dw, s->CKK, sl->col);
        }
    }
    if (!g->dinp) return;
    float *dx = g->dinp + (size_t)i * s->C * s->H * s->W;
    if (pointwise(s)) { /* dx[C,OHW] += w[OC,C]^T . dy[OC,OHW] */
        kc_sgemm(1, 0, s->CKK, s->OHW, s->OC, 1.0f, g->w, s->CKK, dy, s->OHW, 1.0f, dx, s->OHW);
        return;
    }
    /* dcol[CKK,OHW] = w[OC,CKK]^T . dy[OC,OHW], scattered back onto the padded image */
    kc_sgemm(1, 0, s->CKK, s->OHW, s->OC, 1.0f, g->w, s->CKK, dy, s->OHW, 0.0f, sl->col, s->OHW);
    col2im(sl->dpad, sl->col, s);
    unstage_add(dx, sl->dpad, s);
}

static void backward_images(const backward_args *g, conv_slot *sl, const kc_conv_shape *s, int b0,
                            int b1) {
    if (g->dw) memset(sl->dw, 0, (size_t)s->OC * s->CKK * sizeof(float));
    if (g->db) memset(sl->db, 0, (size_t)s->OC * sizeof(float));
    if (!pointwise(s) && g->dw) memset(sl->pad, 0, pad_floats(s) * sizeof(float));
    for (int i = b0; i < b1; i++) backward_image(g, sl, s, i);
}

/* dst[lo:hi) += sum over slots t < nslots of that slot's partial, in slot order */
static void reduce_partials(float *dst, float *scratch, const kc_conv_shape *s, int nslots,
                            int is_db, size_t lo, size_t hi) {
    for (int t = 0; t < nslots; t++) {
        conv_slot sl = slot_at(scratch, s, t);
        const float *part = is_db ? sl.db : sl.dw;
        for (size_t i = lo; i < hi; i++) dst[i] += part[i];
    }
}

void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, float *scratch, int B, int C, int H, int W, int OC, int K,
                     int pad) {
    if (B <= 0 || (!dinp && !dw && !db)) return;
#ifdef __AVX512F__
    if (conv_direct_applies(C, OC, K, pad)) {
        conv_direct_backward(dinp, dw, db, dout, inp, w, scratch, B, C, H, W, OC, K, pad);
        return;
    }
#endif
    if (winograd(K, pad)) {
        winograd3x3_backward(dinp, dw, db, dout, inp, w, scratch, B, C, H, W, OC);
        return;
    }
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad);
    backward_args g = {dinp, dw, db, dout, inp, w};
    int nt = conv_threads(B, &s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int tid = KC_TID(), nth = KC_NT(), b0, b1;
        kc_split(B, nth, tid, &b0, &b1);
        conv_slot sl = slot_at(scratch, &s, tid);
        backward_images(&g, &sl, &s, b0, b1);
        KC_OMP(omp barrier)
        size_t lo, hi;
        if (dw) {
            kc_split16((size_t)OC * s.CKK, nth, tid, &lo, &hi);
            reduce_partials(dw, scratch, &s, nth, 0, lo, hi);
        }
        if (db && tid == 0) reduce_partials(db, scratch, &s, nth, 1, 0, (size_t)OC);
    }
}
