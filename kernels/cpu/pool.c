/* pool.c: 2x2 pooling, stride 2: max pooling, and average pooling (at the end, on the
 * block loops it shares with upsampling in resample.c).
 *
 * A max window's first maximum is found in two steps that match the row-major order
 * (a b / c d): the larger of each horizontal pair (a,b) and (c,d), the left one on ties,
 * then the larger of the two pair winners, the top one on ties.
 *
 * Output rows are short in the networks we train (14 and 5 floats in LeNet), and a loop
 * over one short row vectorizes badly: the compiler's scalar remainder then does most of
 * the work. So rows are pooled a chunk at a time in three loops that each span many rows:
 * a flat pass over input pairs (stage 1), a pass over output rows in whole 16-float runs
 * on private buffers with room to overshoot (stage 2), and a flat pass that writes the
 * result (stage 3). Rows too wide for the buffers are long enough to vectorize as they are.
 *
 * Output row r of the flat [BC*H/2] list reads input rows 2r and 2r+1 of the flat [BC*H]
 * list, so threads that own disjoint output rows never write the same float.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels.h"

#define POOL_GRAIN 32768.0 /* input floats per thread */
#define RUN        16      /* floats per vector run in stage 2 */
#define TMP        2048    /* floats of each private buffer (plus RUN of slack) */

static void check_even(const char *op, int H, int W) {
    if (H % 2 || W % 2) {
        fprintf(stderr, "%s: H=%d and W=%d must both be even\n", op, H, W);
        abort();
    }
}

/* Stage 1 of the forward pass: hm[i] = the larger of in[2i], in[2i+1] for n pairs */
static void pair_max(float *restrict hm, const float *restrict in, size_t n) {
    for (size_t i = 0; i < n; i++) hm[i] = in[2 * i + 1] > in[2 * i] ? in[2 * i + 1] : in[2 * i];
}

/* Stage 1 of the backward pass: also right[i] = 1 when in[2i+1] won (strictly larger),
 * else 0 */
static void pair_argmax(float *restrict hm, float *restrict right, const float *restrict in,
                        size_t n) {
    for (size_t i = 0; i < n; i++) {
        float a = in[2 * i], b = in[2 * i + 1];
        right[i] = b > a ? 1.0f : 0.0f;
        hm[i] = b > a ? b : a;
    }
}

/* ---- forward -------------------------------------------------------------------------- */

/* out rows [r0, r1), one window at a time: for rows long enough to vectorize alone */
static void pool_rows_direct(float *out, const float *inp, int W, int r0, int r1) {
    int OW = W / 2;
    for (int r = r0; r < r1; r++) {
        const float *t = inp + (size_t)2 * r * W, *b = t + W;
        float *o = out + (size_t)r * OW;
        for (int x = 0; x < OW; x++) {
            float top = t[2 * x + 1] > t[2 * x] ? t[2 * x + 1] : t[2 * x];
            float bot = b[2 * x + 1] > b[2 * x] ? b[2 * x + 1] : b[2 * x];
            o[x] = bot > top ? bot : top;
        }
    }
}

/* nr output rows, staged: hm holds [2*nr, OW] pair winners, row q's top and bottom
 * halves at 2q*OW and (2q+1)*OW. Stage 2 writes rows in increasing order, so each run's
 * overshoot is overwritten by the next row (or lands in the slack). */
static void pool_rows_staged(float *out, const float *inp, int OW, int nr) {
    float hm[TMP + RUN], o[TMP + RUN];
    size_t npairs = (size_t)2 * nr * OW;
    pair_max(hm, inp, npairs);
    memset(hm + npairs, 0, RUN * sizeof(float)); /* the last run reads it */
    for (int q = 0; q < nr; q++) {
        const float *t = hm + (size_t)2 * q * OW, *b = t + OW;
        for (int x0 = 0; x0 < OW; x0 += RUN)
            for (int j = 0; j < RUN; j++) {
                int x = x0 + j;
                o[q * OW + x] = b[x] > t[x] ? b[x] : t[x];
            }
    }
    memcpy(out, o, (size_t)nr * OW * sizeof(float));
}

/* output rows [r0, r1) */
static void pool_rows(float *out, const float *inp, int W, int r0, int r1) {
    int OW = W / 2;
    if (2 * OW > TMP) {
        pool_rows_direct(out, inp, W, r0, r1);
        return;
    }
    int chunk = TMP / (2 * OW);
    for (int r = r0; r < r1; r += chunk) {
        int nr = r1 - r < chunk ? r1 - r : chunk;
        pool_rows_staged(out + (size_t)r * OW, inp + (size_t)2 * r * W, OW, nr);
    }
}

void maxpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_forward", H, W);
    int rows = BC * (H / 2);
    int nt = kc_threads_for((double)BC * H * W, POOL_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        pool_rows(out, inp, W, lo, hi);
    }
}

/* ---- backward ------------------------------------------------------------------------- */

/* dinp rows for output rows [r0, r1), one window at a time: for rows long enough to
 * vectorize on their own */
static void pool_grad_rows_direct(float *dinp, const float *dout, const float *inp, int W, int r0,
                                  int r1) {
    int OW = W / 2;
    for (int r = r0; r < r1; r++) {
        const float *t = inp + (size_t)2 * r * W, *b = t + W;
        float *dt = dinp + (size_t)2 * r * W, *db = dt + W;
        const float *g = dout + (size_t)r * OW;
        for (int x = 0; x < OW; x++) {
            int tr = t[2 * x + 1] > t[2 * x], br = b[2 * x + 1] > b[2 * x];
            float top = tr ? t[2 * x + 1] : t[2 * x], bot = br ? b[2 * x + 1] : b[2 * x];
            float gt = bot > top ? 0.0f : g[x], gb = bot > top ? g[x] : 0.0f;
            float t0 = dt[2 * x], t1 = dt[2 * x + 1], b0 = db[2 * x], b1 = db[2 * x + 1];
            dt[2 * x] = t0 + (tr ? 0.0f : gt); /* loads first: see the staged version */
            dt[2 * x + 1] = t1 + (tr ? gt : 0.0f);
            db[2 * x] = b0 + (br ? 0.0f : gb);
            db[2 * x + 1] = b1 + (br ? gb : 0.0f);
        }
    }
}

/* nr output rows, staged: stage 2 gives each pair winner its share gs of the window's
 * gradient (all of it or nothing), stage 3 hands gs to the pair member that won. */
static void pool_grad_rows_staged(float *dinp, const float *dout, const float *inp, int OW,
                                  int nr) {
    float hm[TMP + RUN], right[TMP + RUN], gs[TMP + RUN], g[TMP / 2 + RUN];
    float top[TMP / 2], bot[TMP / 2]; /* nr * OWr <= TMP / 2: see pool_grad_rows */
    size_t npairs = (size_t)2 * nr * OW;
    int OWr = (OW + RUN - 1) / RUN * RUN; /* rows of top and bot: whole runs, no overshoot */
    pair_argmax(hm, right, inp, npairs);
    memset(hm + npairs, 0, RUN * sizeof(float)); /* the last run reads it */
    /* dout copied so the runs may read past its last row */
    memcpy(g, dout, (size_t)nr * OW * sizeof(float));
    memset(g + (size_t)nr * OW, 0, RUN * sizeof(float));
    /* Each output row's share for its top and bottom pair rows, in rows padded to whole runs.
     * The earlier form, runs overshooting into the next row of one shared buffer, gave wrong
     * gradients when built by GCC 12 for AVX2 (-march=x86-64-v3; tests/test_kernels_pool); the
     * cause was not pinned down, this form is right under both builds. */
    for (int q = 0; q < nr; q++) {
        const float *t = hm + (size_t)2 * q * OW, *b = t + OW, *gq = g + (size_t)q * OW;
        float *gt = top + (size_t)q * OWr, *gb = bot + (size_t)q * OWr;
        for (int x0 = 0; x0 < OW; x0 += RUN)
            for (int j = 0; j < RUN; j++) {
                int win = b[x0 + j] > t[x0 + j];
                gt[x0 + j] = win ? 0.0f : gq[x0 + j];
                gb[x0 + j] = win ? gq[x0 + j] : 0.0f;
            }
    }
    for (int q = 0; q < nr; q++) {
        memcpy(gs + (size_t)2 * q * OW, top + (size_t)q * OWr, (size_t)OW * sizeof(float));
        memcpy(gs + (size_t)(2 * q + 1) * OW, bot + (size_t)q * OWr, (size_t)OW * sizeof(float));
    }
    /* both members loaded before either is stored: written as two `+=`, GCC stores the
     * left ones one lane at a time and then reloads them with the right ones (10x slower) */
    for (size_t i = 0; i < npairs; i++) {
        float left = dinp[2 * i], rgt = dinp[2 * i + 1], g = gs[i];
        dinp[2 * i] = left + (right[i] != 0.0f ? 0.0f : g);
        dinp[2 * i + 1] = rgt + (right[i] != 0.0f ? g : 0.0f);
    }
}

static void pool_grad_rows(float *dinp, const float *dout, const float *inp, int W, int r0,
                           int r1) {
    int OW = W / 2, OWr = (OW + RUN - 1) / RUN * RUN; /* staged rows are padded to whole runs */
    if (2 * OWr > TMP) {
        pool_grad_rows_direct(dinp, dout, inp, W, r0, r1);
        return;
    }
    int chunk = TMP / (2 * OWr);
    for (int r = r0; r < r1; r += chunk) {
        int nr = r1 - r < chunk ? r1 - r : chunk;
        size_t i0 = (size_t)2 * r * W;
        pool_grad_rows_staged(dinp + i0, dout + (size_t)r * OW, inp + i0, OW, nr);
    }
}

void maxpool2x2_backward(float *dinp, const float *dout, const float *inp, int BC, int H, int W) {
    check_even("maxpool2x2_backward", H, W);
    int rows = BC * (H / 2);
    int nt = kc_threads_for((double)BC * H * W, POOL_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        pool_grad_rows(dinp, dout, inp, W, lo, hi);
    }
}

/* ---- average pooling ------------------------------------------------------------------ */

void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("avgpool2x2_forward", H, W);
    kc_resample2x(out, inp, BC * (H / 2), W / 2, 0.25f, 0, 1);
}

void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W) {
    check_even("avgpool2x2_backward", H, W);
    if (!dinp) return;
    kc_resample2x(dinp, dout, BC * (H / 2), W / 2, 0.25f, 1, 0);
}
