/* conv2d.c: 2-D convolution (square kernel, stride 1, zero padding) as im2col + GEMM.
 *
 * Images are independent, so each thread takes a contiguous run of them and works image
 * by image in its own slot of the caller's scratch: the image copied into a zero-bordered
 * buffer, its columns col[C*K*K, OH*OW], and its partial dw and db. One image's columns
 * (tens of KB for LeNet) stay in L2 between im2col and the GEMM that reads them. Measured
 * on LeNet's layers, per-image GEMMs run as fast as one GEMM over the whole batch (BLAS is
 * limited by the small OC and C*K*K either way), and the batched form would stream
 * megabytes of columns through memory. Per-thread dw/db partials are summed in thread
 * order at the end, so results depend only on the thread count. */
#include <string.h>

#include "cpu.h"
#include "kernels.h"

/* Slots are per thread, so the scratch size must not depend on the thread count, which
 * may change after the caller sized it: threads beyond this share nothing and sit out. */
#define CONV_MAX_SLOTS 16
/* multiply-adds per thread below which a thread is not worth waking */
#define CONV_GRAIN 262144.0
/* the copies in im2col and col2im move whole 16-float runs (see copy_run) */
#define RUN 16

typedef struct {
    int C, H, W, OC, K, pad;
    int PH, PW;   /* padded input */
    int OH, OW;   /* output */
    int CKK, OHW; /* rows and columns of col */
    int direct;   /* 1x1, no padding: the image is its own col */
} conv_shape;

static conv_shape shape_of(int C, int H, int W, int OC, int K, int pad) {
    conv_shape s = {.C = C, .H = H, .W = W, .OC = OC, .K = K, .pad = pad};
    s.PH = H + 2 * pad;
    s.PW = W + 2 * pad;
    s.OH = s.PH - K + 1;
    s.OW = s.PW - K + 1;
    s.CKK = C * K * K;
    s.OHW = s.OH * s.OW;
    s.direct = K == 1 && pad == 0;
    return s;
}

/* One thread's slot. The padded buffers and col carry RUN floats of slack at the end
 * because copy_run and add_run move whole runs past the last row. */
typedef struct {
    float *pad;  /* [C,PH,PW] the image with a zero border */
    float *dpad; /* [C,PH,PW] gradient w.r.t. pad */
    float *col;  /* [CKK,OHW] */
    float *dw;   /* [OC,CKK] partial */
    float *db;   /* [OC] partial */
} conv_slot;

static size_t pad_floats(const conv_shape *s) {
    return kc_round16((size_t)s->C * s->PH * s->PW + RUN);
}
static size_t col_floats(const conv_shape *s) { return kc_round16((size_t)s->CKK * s->OHW + RUN); }
static size_t slot_floats(const conv_shape *s) {
    return 2 * pad_floats(s) + col_floats(s) + kc_round16((size_t)s->OC * s->CKK) +
           kc_round16((size_t)s->OC);
}
static int slots_for(int B) { return B < CONV_MAX_SLOTS ? B : CONV_MAX_SLOTS; }

static conv_slot slot_at(float *scratch, const conv_shape *s, int i) {
    conv_slot sl;
    sl.pad = scratch + (size_t)i * slot_floats(s);
    sl.dpad = sl.pad + pad_floats(s);
    sl.col = sl.dpad + pad_floats(s);
    sl.dw = sl.col + col_floats(s);
    sl.db = sl.dw + kc_round16((size_t)s->OC * s->CKK);
    return sl;
}

size_t conv2d_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return 0;
    conv_shape s = shape_of(C, H, W, OC, K, pad);
    return (size_t)slots_for(B) * slot_floats(&s);
}

/* ---- im2col / col2im ------------------------------------------------------------------ */

/* d[0:n) = s[0:n), written as whole runs: the tail past n lands where the next row (or
 * the slack) will be written afterwards. Fixed-size runs compile to single vector moves;
 * LeNet's rows are 28 and 10 floats, where per-row loop overhead would dominate. */
static inline void copy_run(float *d, const float *s, int n) {
    for (int j = 0; j < n; j += RUN) memcpy(d + j, s + j, RUN * sizeof(float));
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

/* pad[C,PH,PW] interior = x[C,H,W]; the border was zeroed once per call and stays zero */
static void stage_image(float *restrict pad, const float *restrict x, const conv_shape *s) {
    if (s->pad == 0) {
        memcpy(pad, x, (size_t)s->C * s->H * s->W * sizeof(float));
        return;
    }
    for (int c = 0; c < s->C; c++)
        for (int iy = 0; iy < s->H; iy++)
            memcpy(pad + ((size_t)c * s->PH + iy + s->pad) * s->PW + s->pad,
                   x + ((size_t)c * s->H + iy) * s->W, (size_t)s->W * sizeof(float));
}

/* Copies one row of col: width is OW rounded up to whole runs. The common widths get
 * fixed-size copies, which compile to one or two vector moves; with ~10 to 30 floats per
 * row (LeNet) a general copy loop costs more than the data. */
static inline void copy_row(float *dst, const float *src, int OW, int width) {
    if (width == RUN)
        memcpy(dst, src, RUN * sizeof(float));
    else if (width == 2 * RUN)
        memcpy(dst, src, 2 * RUN * sizeof(float));
    else
        copy_run(dst, src, OW);
}

/* col[(c,ky,kx), (y,x)] = pad[c, y+ky, x+kx]. Rows are written in increasing address
 * order, which is what lets copy_run overshoot. */
static void im2col(float *col, const float *pad, const conv_shape *s) {
    int OH = s->OH, OW = s->OW, PW = s->PW, width = (OW + RUN - 1) / RUN * RUN;
    float *dst = col;
    for (int c = 0; c < s->C; c++)
        for (int ky = 0; ky < s->K; ky++)
            for (int kx = 0; kx < s->K; kx++) {
                const float *src = pad + ((size_t)c * s->PH + ky) * PW + kx;
                for (int y = 0; y < OH; y++, dst += OW, src += PW) copy_row(dst, src, OW, width);
            }
}

/* dpad[c, y+ky, x+kx] = sum of dcol[(c,ky,kx), (y,x)]: the adjoint of im2col.
 * Short rows go in masked runs, even rows first, then odd: a run on row y reaches into
 * row y+1, and reading what the previous iteration has just stored stalls store-to-load
 * forwarding (3x slower for LeNet's conv2). Rows of two runs or more add plainly. */
static void col2im(float *restrict dpad, const float *restrict dcol, const conv_shape *s) {
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
static void unstage_add(float *restrict dx, const float *restrict dpad, const conv_shape *s) {
    for (int c = 0; c < s->C; c++)
        for (int iy = 0; iy < s->H; iy++) {
            float *d = dx + ((size_t)c * s->H + iy) * s->W;
            const float *p = dpad + ((size_t)c * s->PH + iy + s->pad) * s->PW + s->pad;
            for (int ix = 0; ix < s->W; ix++) d[ix] += p[ix];
        }
}

/* The columns of image x: x itself for a 1x1 kernel, else built in the slot. */
static const float *columns(conv_slot *sl, const float *x, const conv_shape *s) {
    if (s->direct) return x;
    stage_image(sl->pad, x, s);
    im2col(sl->col, sl->pad, s);
    return sl->col;
}

/* ---- forward -------------------------------------------------------------------------- */

/* out[b] = w . col(inp[b]) + bias for images b in [b0, b1) */
static void forward_images(float *out, const float *inp, const float *w, const float *b,
                           conv_slot *sl, const conv_shape *s, int b0, int b1) {
    if (!s->direct) memset(sl->pad, 0, pad_floats(s) * sizeof(float));
    for (int i = b0; i < b1; i++) {
        const float *cols = columns(sl, inp + (size_t)i * s->C * s->H * s->W, s);
        float *y = out + (size_t)i * s->OC * s->OHW; /* [OC, OHW] */
        if (b)
            for (int oc = 0; oc < s->OC; oc++)
                for (int p = 0; p < s->OHW; p++) y[(size_t)oc * s->OHW + p] = b[oc];
        /* y[OC,OHW] (+)= w[OC,CKK] . cols[CKK,OHW] */
        kc_sgemm(0, 0, s->OC, s->OHW, s->CKK, 1.0f, w, s->CKK, cols, s->OHW, b ? 1.0f : 0.0f, y,
                 s->OHW);
    }
}

static int conv_threads(int B, const conv_shape *s) {
    int nt = kc_threads_for((double)B * s->OC * s->CKK * s->OHW, CONV_GRAIN);
    return nt < slots_for(B) ? nt : slots_for(B);
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *scratch,
                    int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return;
    conv_shape s = shape_of(C, H, W, OC, K, pad);
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

/* sum of x[0:n) in 16 independent lanes: a plain running sum is one serial dependency
 * chain that the compiler may not reorder, 16 lanes vectorize; the order is still fixed */
static float sum_lanes(const float *x, int n) {
    float acc[RUN] = {0};
    int j = 0;
    for (; j + RUN <= n; j += RUN)
        for (int k = 0; k < RUN; k++) acc[k] += x[j + k];
    for (int k = 0; j + k < n; k++) acc[k] += x[j + k];
    float sum = 0.0f;
    for (int k = 0; k < RUN; k++) sum += acc[k];
    return sum;
}

typedef struct {
    float *dinp, *dw, *db; /* any may be NULL */
    const float *dout, *inp, *w;
} backward_args;

/* Image i: dinp directly (a thread's images are its own), dw and db into the slot's
 * partials. The columns are rebuilt here: the caller's scratch may have served other
 * layers since the forward pass. */
static void backward_image(const backward_args *g, conv_slot *sl, const conv_shape *s, int i) {
    const float *dy = g->dout + (size_t)i * s->OC * s->OHW; /* [OC, OHW] */
    if (g->db)
        for (int oc = 0; oc < s->OC; oc++)
            sl->db[oc] += sum_lanes(dy + (size_t)oc * s->OHW, s->OHW);
    if (g->dw) {
        /* dw[OC,CKK] += dy[OC,OHW] . cols[CKK,OHW]^T */
        const float *cols = columns(sl, g->inp + (size_t)i * s->C * s->H * s->W, s);
        kc_sgemm(0, 1, s->OC, s->CKK, s->OHW, 1.0f, dy, s->OHW, cols, s->OHW, 1.0f, sl->dw, s->CKK);
    }
    if (!g->dinp) return;
    float *dx = g->dinp + (size_t)i * s->C * s->H * s->W;
    /* dcol[CKK,OHW] = w[OC,CKK]^T . dy[OC,OHW]; for 1x1 that is dx itself */
    if (s->direct) {
        kc_sgemm(1, 0, s->CKK, s->OHW, s->OC, 1.0f, g->w, s->CKK, dy, s->OHW, 1.0f, dx, s->OHW);
        return;
    }
    kc_sgemm(1, 0, s->CKK, s->OHW, s->OC, 1.0f, g->w, s->CKK, dy, s->OHW, 0.0f, sl->col, s->OHW);
    col2im(sl->dpad, sl->col, s);
    unstage_add(dx, sl->dpad, s);
}

static void backward_images(const backward_args *g, conv_slot *sl, const conv_shape *s, int b0,
                            int b1) {
    if (g->dw) memset(sl->dw, 0, (size_t)s->OC * s->CKK * sizeof(float));
    if (g->db) memset(sl->db, 0, (size_t)s->OC * sizeof(float));
    if (g->dw && !s->direct) memset(sl->pad, 0, pad_floats(s) * sizeof(float));
    for (int i = b0; i < b1; i++) backward_image(g, sl, s, i);
}

/* dst[lo:hi) += sum over slots t < nslots of that slot's partial, in slot order */
static void reduce_partials(float *dst, float *scratch, const conv_shape *s, int nslots, int is_db,
                            size_t lo, size_t hi) {
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
    conv_shape s = shape_of(C, H, W, OC, K, pad);
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
