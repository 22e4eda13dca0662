/* conv2d_direct.c: direct convolutions for layers with one input or one output channel, an
 * image model's first and last layers (LeNet's conv1, the U-Net's convolutions in and out).
 *
 * There a GEMM has a dimension of 1 and a depth of K*K = 9 or 25, and im2col packing or
 * Winograd's transforms cost several times the multiplications. Here every result is
 * computed straight from the image with its zero border, 16 output pixels of a row per
 * vector:
 *   forward  out[o][y][x..x+16) = b[o] + sum over c, ky, kx of
 *                                 w[o][c][ky][kx] * pad[c][y+ky][x+kx .. x+kx+16)
 *            for blocks of up to 8 output channels and 2 to 8 rows (8 to 16 accumulators:
 *            fewer would wait on each other's FMAs), each unaligned load of the image
 *            serving the block's channels;
 *   dw       dw[o][c][ky][kx] = sum over y, x of dout[o][y][x] * pad[c][y+ky][x+kx]: per
 *            (o, c) the K*K sums run in K*K vectors over the image, are added to the thread's
 *            16-lane partials, and are folded across lanes and threads once at the end (in
 *            thread order: results depend on the thread count only through that order);
 *   dx       the forward pass of dout, given a zero border of K-1-pad, through the filter
 *            turned 180 degrees with its two channel axes swapped, added onto dinp.
 * Threads take whole images. AVX-512 only: elsewhere conv2d.c keeps to its other paths. */
#include <string.h>

#include "cpu.h" /* with <immintrin.h> where the target has AVX-512 */
#include "kernels.h"

#ifdef __AVX512F__

#define MAX_SLOTS 16 /* as conv2d.c: the scratch size must not depend on the thread count */
#define GRAIN     262144.0
#define OB_MAX    8 /* output channels per forward block */
#define R_MAX     8 /* rows per forward block */

/* the shape of dx as a forward pass: dout [OC, OH, OW] in, dinp [C, H, W] out */
static kc_conv_shape flipped(const kc_conv_shape *s) {
    return kc_conv_shape_of(s->OC, s->OH, s->OW, s->C, s->K, s->K - 1 - s->pad);
}

int conv_direct_applies(int C, int OC, int K, int pad) {
    return (C == 1 || OC == 1) && (K == 3 || K == 5) && pad >= 0 && pad <= K - 1;
}

/* A staged image: [C][PH + R_MAX - 1][PW] and 16 floats of slack. A block's last row reads
 * up to R_MAX - 1 rows past the last output row's window, and a vector of 16 reads up to 15
 * floats past its row. */
static int staged_rows(const kc_conv_shape *s) { return s->PH + R_MAX - 1; }
static size_t staged_floats(const kc_conv_shape *s) {
    return kc_round16((size_t)s->C * staged_rows(s) * s->PW + 16);
}
static size_t part_floats(const kc_conv_shape *s) {
    return (size_t)s->OC * s->C * s->K * s->K * 16;
}
static size_t slot_floats(const kc_conv_shape *s) {
    kc_conv_shape f = flipped(s);
    return staged_floats(s) + staged_floats(&f) + part_floats(s) + kc_round16((size_t)s->OC);
}
static size_t wflip_floats(const kc_conv_shape *s) {
    return kc_round16((size_t)s->OC * s->C * s->K * s->K);
}
static int slots_for(int B) { return B < MAX_SLOTS ? B : MAX_SLOTS; }

typedef struct {
    float *in;   /* the input image, staged */
    float *dout; /* dout, staged for dx */
    float *part; /* [OC][C][K*K][16] dw partials */
    float *db;   /* [OC] */
} dslot;

static dslot slot_at(float *scratch, const kc_conv_shape *s, int i) {
    kc_conv_shape f = flipped(s);
    dslot sl;
    sl.in = scratch + wflip_floats(s) + (size_t)i * slot_floats(s);
    sl.dout = sl.in + staged_floats(s);
    sl.part = sl.dout + staged_floats(&f);
    sl.db = sl.part + part_floats(s);
    return sl;
}

size_t conv_direct_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return 0;
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad);
    return wflip_floats(&s) + (size_t)slots_for(B) * slot_floats(&s);
}

static int direct_threads(int B, const kc_conv_shape *s) {
    int nt = kc_threads_for((double)B * s->OC * s->C * s->K * s->K * s->OH * s->OW, GRAIN);
    return nt < slots_for(B) ? nt : slots_for(B);
}

/* the interior of dst [C][staged_rows][PW] = src [C][H][W]; the border and slack were
 * zeroed once (zero_staged) and nothing else writes there */
static void stage(float *restrict dst, const float *restrict src, const kc_conv_shape *s) {
    for (int c = 0; c < s->C; c++)
        for (int y = 0; y < s->H; y++) { /* short rows: a masked vector copy or two each */
            float *d = dst + ((size_t)c * staged_rows(s) + y + s->pad) * s->PW + s->pad;
            const float *x = src + ((size_t)c * s->H + y) * s->W;
            __builtin_prefetch(x + 256); /* the input streams from memory (as in Winograd's) */
            for (int x0 = 0; x0 < s->W; x0 += 16) {
                __mmask16 m = kc_lanes(s->W - x0);
                _mm512_mask_storeu_ps(d + x0, m, _mm512_maskz_loadu_ps(m, x + x0));
            }
        }
}
static void zero_staged(float *dst, const kc_conv_shape *s) {
    memset(dst, 0, staged_floats(s) * sizeof(float));
}

/* ---- forward ---------------------------------------------------------------------------- */

/* out rows [y, y+R) (those below OH), columns [x0, x0+16) of output channels [o0, o0+OB) of
 * one image, from its staged input img; w is [OC][C][K][K]. accumulate adds onto out (dx),
 * else out is overwritten with bias (may be NULL) plus the sums. */
static inline __attribute__((always_inline)) void
fwd_tile(float *out, const float *img, const float *w, const float *bias, const kc_conv_shape *s,
         int o0, int y, int x0, int accumulate, const int OB, const int R, const int K) {
    const int KK = K * K;
    int C = s->C, PW = s->PW, rows = s->OH - y < R ? s->OH - y : R;
    size_t plane = (size_t)staged_rows(s) * PW;
    __m512 acc[OB_MAX][R_MAX];
    for (int ob = 0; ob < OB; ob++)
        for (int r = 0; r < R; r++) acc[ob][r] = _mm512_set1_ps(bias ? bias[o0 + ob] : 0.0f);
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++) {
            const float *r0 = img + c * plane + (size_t)(y + ky) * PW + x0;
            const float *wk = w + ((size_t)o0 * C + c) * KK + ky * K;
            for (int kx = 0; kx < K; kx++) {
                __m512 v[R_MAX];
                for (int r = 0; r < R; r++) v[r] = _mm512_loadu_ps(r0 + (size_t)r * PW + kx);
                for (int ob = 0; ob < OB; ob++) {
                    __m512 wv = _mm512_set1_ps(wk[(size_t)ob * C * KK + kx]);
                    for (int r = 0; r < R; r++) acc[ob][r] = _mm512_fmadd_ps(wv, v[r], acc[ob][r]);
                }
            }
        }
    __mmask16 m = kc_lanes(s->OW - x0);
    /* constant bounds, the rows past OH skipped inside: indexed by a variable, acc would be
     * kept in memory rather than in registers */
    for (int ob = 0; ob < OB; ob++)
        for (int r = 0; r < R; r++) {
            if (r >= rows) break;
            float *p = out + ((size_t)(o0 + ob) * s->OH + y + r) * s->OW + x0;
            __m512 v = acc[ob][r];
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, p));
            _mm512_mask_storeu_ps(p, m, v);
        }
}

/* the tiles of output channels [o0, o0+OB) over the whole image, R rows at a time */
static inline __attribute__((always_inline)) void
fwd_block(float *out, const float *img, const float *w, const float *bias, const kc_conv_shape *s,
          int o0, int accumulate, const int OB, const int R, const int K) {
    for (int y = 0; y < s->OH; y += R)
        for (int x0 = 0; x0 < s->OW; x0 += 16)
            fwd_tile(out, img, w, bias, s, o0, y, x0, accumulate, OB, R, K);
}

/* fwd_OB: a block of OB output channels, with R rows so that OB * R is 8 to 16 */
#define FWD_OB(OB, R)                                                                           \
    static void fwd_##OB(float *out, const float *img, const float *w, const float *bias,       \
                         const kc_conv_shape *s, int o0, int accumulate) {                      \
        if (s->K == 3)                                                                          \
            fwd_block(out, img, w, bias, s, o0, accumulate, OB, R, 3);                          \
        else                                                                                    \
            fwd_block(out, img, w, bias, s, o0, accumulate, OB, R, 5);                          \
    }
FWD_OB(1, 8)
FWD_OB(2, 4)
FWD_OB(3, 4)
FWD_OB(4, 4)
FWD_OB(5, 2)
FWD_OB(6, 2)
FWD_OB(7, 2)
FWD_OB(8, 2)

typedef void (*fwd_fn)(float *out, const float *img, const float *w, const float *bias,
                       const kc_conv_shape *s, int o0, int accumulate);
static const fwd_fn fwd_for[OB_MAX + 1] = {NULL, fwd_1, fwd_2, fwd_3, fwd_4, fwd_5, fwd_6, fwd_7, fwd_8};

/* one image's output [OC][OH][OW] from its staged input */
static void forward_image(float *out, const float *img, const float *w, const float *bias,
                          const kc_conv_shape *s, int accumulate) {
    for (int o0 = 0; o0 < s->OC; o0 += OB_MAX) {
        int ob = s->OC - o0 < OB_MAX ? s->OC - o0 : OB_MAX;
        fwd_for[ob](out, img, w, bias, s, o0, accumulate);
    }
}

void conv_direct_forward(float *out, const float *inp, const float *w, const float *b,
                         float *scratch, int B, int C, int H, int W, int OC, int K, int pad) {
    if (B <= 0) return;
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad);
    int nt = direct_threads(B, &s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int b0, b1;
        kc_split(B, KC_NT(), KC_TID(), &b0, &b1);
        dslot sl = slot_at(scratch, &s, KC_TID());
        zero_staged(sl.in, &s);
        for (int i = b0; i < b1; i++) {
            stage(sl.in, inp + (size_t)i * C * H * W, &s);
            forward_image(out + (size_t)i * OC * s.OH * s.OW, sl.in, w, b, &s, 0);
        }
    }
}

/* ---- backward --------------------------------------------------------------------------- */

/* part[K*K][16] += the 16-lane sums of dy [OH][OW] times channel img (staged) shifted by
 * (ky, kx), for one (output, input) channel pair of one image: a pass over the image per ky,
 * in K accumulators (all K*K at once would not stay in registers: GCC keeps such an array
 * in memory) */
static inline __attribute__((always_inline)) void dw_pair(float *part, const float *dy,
                                                          const float *img, const kc_conv_shape *s,
                                                          const int K) {
    for (int ky = 0; ky < K; ky++) {
        __m512 acc[5];
#pragma GCC unroll 5
        for (int kx = 0; kx < K; kx++) acc[kx] = _mm512_setzero_ps();
        for (int y = 0; y < s->OH; y++) {
            const float *d_row = dy + (size_t)y * s->OW, *r = img + (size_t)(y + ky) * s->PW;
            for (int x0 = 0; x0 < s->OW; x0 += 16) {
                __mmask16 m = kc_lanes(s->OW - x0);
                __m512 d = _mm512_maskz_loadu_ps(m, d_row + x0);
#pragma GCC unroll 5
                for (int kx = 0; kx < K; kx++)
                    acc[kx] = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, r + x0 + kx), acc[kx]);
            }
        }
#pragma GCC unroll 5
        for (int kx = 0; kx < K; kx++) {
            float *p = part + 16 * (ky * K + kx);
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), acc[kx]));
        }
    }
}

static void dw_pair3(float *part, const float *dy, const float *img, const kc_conv_shape *s) {
    dw_pair(part, dy, img, s, 3);
}
static void dw_pair5(float *part, const float *dy, const float *img, const kc_conv_shape *s) {
    dw_pair(part, dy, img, s, 5);
}

/* wflip[c][o][ky][kx] = w[o][c][K-1-ky][K-1-kx]: the filter of dx */
static void flip_filter(float *wflip, const float *w, int OC, int C, int K) {
    int KK = K * K;
    for (int c = 0; c < C; c++)
        for (int o = 0; o < OC; o++)
            for (int k = 0; k < KK; k++)
                wflip[((size_t)c * OC + o) * KK + k] = w[((size_t)o * C + c) * KK + KK - 1 - k];
}

void conv_direct_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float *scratch, int B, int C, int H, int W, int OC, int K,
                          int pad) {
    if (B <= 0 || (!dinp && !dw && !db)) return;
    kc_conv_shape s = kc_conv_shape_of(C, H, W, OC, K, pad), f = flipped(&s);
    size_t per_out = (size_t)s.OH * s.OW, per_in = (size_t)H * W, KK = (size_t)K * K;
    float *wflip = scratch;
    if (dinp) flip_filter(wflip, w, OC, C, K);
    void (*pair)(float *, const float *, const float *, const kc_conv_shape *) =
        K == 3 ? dw_pair3 : dw_pair5;
    int nt = direct_threads(B, &s);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int tid = KC_TID(), nth = KC_NT(), b0, b1;
        kc_split(B, nth, tid, &b0, &b1);
        dslot sl = slot_at(scratch, &s, tid);
        if (dw) {
            zero_staged(sl.in, &s);
            memset(sl.part, 0, part_floats(&s) * sizeof(float));
        }
        if (db) memset(sl.db, 0, (size_t)OC * sizeof(float));
        if (dinp) zero_staged(sl.dout, &f);
        for (int i = b0; i < b1; i++) {
            const float *dy = dout + (size_t)i * OC * per_out;
            if (db)
                for (int o = 0; o < OC; o++) sl.db[o] += kc_sum_lanes(dy + o * per_out, (int)per_out);
            if (dw) {
                stage(sl.in, inp + (size_t)i * C * per_in, &s);
                for (int o = 0; o < OC; o++)
                    for (int c = 0; c < C; c++)
                        pair(sl.part + ((size_t)o * C + c) * KK * 16, dy + o * per_out,
                             sl.in + (size_t)c * staged_rows(&s) * s.PW, &s);
            }
            if (dinp) {
                stage(sl.dout, dy, &f);
                forward_image(dinp + (size_t)i * C * per_in, sl.dout, wflip, NULL, &f, 1);
            }
        }
        KC_OMP(omp barrier)
        /* dw[j] += the lanes of every thread's partial j, thread by thread */
        if (dw) {
            int lo, hi;
            kc_split(OC * C * K * K, nth, tid, &lo, &hi);
            for (int t = 0; t < nth; t++) {
                const float *part = slot_at(scratch, &s, t).part;
                for (int j = lo; j < hi; j++) dw[j] += kc_sum_lanes(part + (size_t)16 * j, 16);
            }
        }
        if (db && tid == 0)
            for (int t = 0; t < nth; t++) {
                const float *part = slot_at(scratch, &s, t).db;
                for (int o = 0; o < OC; o++) db[o] += part[o];
            }
    }
}

#endif /* __AVX512F__ */
