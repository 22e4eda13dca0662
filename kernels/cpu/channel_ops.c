/* channel_ops.c: the U-Net's data movement along channels of NCHW maps, x[B,C,HW]:
 * concatenation (skip connections), a per-(example, channel) shift (time embedding) and
 * the transpose to and from token layout [B,HW,C] (attention over pixels).
 *
 * All memory-bound. Threads take whole rows of HW floats (or tiles, for the transpose) of
 * the tensor they write, so no two write the same float, and the only sums (the shift's
 * gradient over HW) run inside one row in a fixed order: results never depend on the
 * thread count. */
#include <string.h>

#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define CH_GRAIN   65536.0 /* floats per thread */
#define TILE       16      /* transpose tile side: 16 floats = one cache line */

/* ---- concat_channels ------------------------------------------------------------------ */

/* The longest run of out rows from row r (of the flat [B*(C1+C2)] rows of HW) that come
 * from one source and stay below hi. Sets *from_b and *src_row (row in that source). */
static int concat_run(int r, int hi, int C1, int C2, int *from_b, size_t *src_row) {
    int Ct = C1 + C2, ex = r / Ct, c = r % Ct;
    *from_b = c >= C1;
    *src_row = *from_b ? (size_t)ex * C2 + (size_t)(c - C1) : (size_t)ex * C1 + (size_t)c;
    int end = (*from_b ? Ct : C1) - c;
    return end < hi - r ? end : hi - r;
}

static void concat_rows(float *out, const float *a, const float *b, int C1, int C2, size_t HW,
                        int lo, int hi) {
    for (int r = lo; r < hi;) {
        int from_b;
        size_t src;
        int n = concat_run(r, hi, C1, C2, &from_b, &src);
        memcpy(out + (size_t)r * HW, (from_b ? b : a) + src * HW, (size_t)n * HW * sizeof(float));
        r += n;
    }
}

/* dst[n] += src[n] */
static void add_to(float *restrict dst, const float *restrict src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static void concat_grad_rows(float *da, float *db, const float *dout, int C1, int C2, size_t HW,
                             int lo, int hi) {
    for (int r = lo; r < hi;) {
        int from_b;
        size_t src;
        int n = concat_run(r, hi, C1, C2, &from_b, &src);
        float *dst = from_b ? db : da;
        if (dst) add_to(dst + src * HW, dout + (size_t)r * HW, (size_t)n * HW);
        r += n;
    }
}

void concat_channels_forward(float *out, const float *a, const float *b, int B, int C1, int C2,
                             int HW) {
    int rows = B * (C1 + C2);
    int nt = kc_threads_for((double)rows * HW, CH_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        concat_rows(out, a, b, C1, C2, (size_t)HW, lo, hi);
    }
}

void concat_channels_backward(float *da, float *db, const float *dout, int B, int C1, int C2,
                              int HW) {
    if (!da && !db) return;
    int rows = B * (C1 + C2);
    int nt = kc_threads_for((double)rows * HW, CH_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        concat_grad_rows(da, db, dout, C1, C2, (size_t)HW, lo, hi);
    }
}

/* ---- add_channel ---------------------------------------------------------------------- */

/* rows [lo, hi) of the flat [B*C] rows: out = inp + v[row]; out may alias inp */
static void shift_rows(float *out, const float *inp, const float *v, size_t HW, int lo,
                       int hi) {
    for (int r = lo; r < hi; r++) {
        float s = v[r];
        const float *x = inp + (size_t)r * HW;
        float *o = out + (size_t)r * HW;
        for (size_t i = 0; i < HW; i++) o[i] = x[i] + s;
    }
}

void add_channel_forward(float *out, const float *inp, const float *v, int B, int C, int HW) {
    int rows = B * C;
    int nt = kc_threads_for((double)rows * HW, CH_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        shift_rows(out, inp, v, (size_t)HW, lo, hi);
    }
}

/* rows [lo, hi): dinp += dout (when wanted), dv[row] += sum of the row (when wanted) */
static void shift_grad_rows(float *dinp, float *dv, const float *dout, size_t HW, int lo,
                            int hi) {
    for (int r = lo; r < hi; r++) {
        const float *g = dout + (size_t)r * HW;
        if (dinp) add_to(dinp + (size_t)r * HW, g, HW);
        if (dv) dv[r] += vm_sum(g, (int)HW);
    }
}

void add_channel_backward(float *dinp, float *dv, const float *dout, int B, int C, int HW) {
    if (!dinp && !dv) return;
    int rows = B * C;
    int nt = kc_threads_for((double)rows * HW * ((dinp != NULL) + (dv != NULL)), CH_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        shift_grad_rows(dinp, dv, dout, (size_t)HW, lo, hi);
    }
}

/* ---- transpose_chw -------------------------------------------------------------------- */

/* dst[b, s, r] (= or +=) src[b, r, s] for src[B,R,S], over the dst row blocks [lo, hi) of
 * the flat list of B * ceil(S/TILE) blocks of TILE rows. Tiles of TILE x TILE keep both
 * the rows read and the rows written in cache while a tile is moved. */
static void transpose_blocks(float *dst, const float *src, int R, int S, int accumulate,
                             int lo, int hi) {
    int nsb = (S + TILE - 1) / TILE;
    for (int blk = lo; blk < hi; blk++) {
        int b = blk / nsb, s0 = (blk % nsb) * TILE, s1 = s0 + TILE < S ? s0 + TILE : S;
        const float *sb = src + (size_t)b * R * S;
        float *db = dst + (size_t)b * R * S;
        for (int r0 = 0; r0 < R; r0 += TILE) {
            int r1 = r0 + TILE < R ? r0 + TILE : R;
            for (int s = s0; s < s1; s++) {
                float *d = db + (size_t)s * R;
                if (accumulate)
                    for (int r = r0; r < r1; r++) d[r] += sb[(size_t)r * S + s];
                else
                    for (int r = r0; r < r1; r++) d[r] = sb[(size_t)r * S + s];
            }
        }
    }
}

static void transpose(float *dst, const float *src, int B, int R, int S, int accumulate) {
    int blocks = B * ((S + TILE - 1) / TILE);
    int nt = kc_threads_for((double)B * R * S, CH_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(blocks, KC_NT(), KC_TID(), &lo, &hi);
        transpose_blocks(dst, src, R, S, accumulate, lo, hi);
    }
}

void transpose_chw_forward(float *out, const float *inp, int B, int C, int HW) {
    transpose(out, inp, B, C, HW, 0);
}

void transpose_chw_backward(float *dinp, const float *dout, int B, int C, int HW) {
    if (!dinp) return;
    transpose(dinp, dout, B, HW, C, 1); /* dinp[b, c, s] += dout[b, s, c] */
}
