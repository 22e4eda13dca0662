/* resample.c: the U-Net's changes of resolution, nearest-neighbour 2x upsampling and 2x2
 * average pooling, over planes [BC, H, W].
 *
 * The two are each other's transposes up to a factor 1/4: upsampling copies each small
 * pixel into a 2x2 block, pooling averages a 2x2 block into one small pixel. So there are
 * two loops, both over rows of the small map:
 *   spread: big 2x2 block  (=|+=) scale * small pixel    upsample forward, avgpool backward
 *   gather: small pixel    (=|+=) scale * sum of block   avgpool forward, upsample backward
 * A block is summed as (top pair) + (bottom pair) whatever the thread count, and threads
 * take whole small rows, so they never write the same float and results are deterministic.
 * Written out once per row with the overwrite and accumulate cases as separate loops: an
 * overwrite must not read its (uninitialised) output. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"
#include "kernels.h"

#define RESAMPLE_GRAIN 32768.0 /* big-map floats per thread */

/* small row r of [rows, W] <-> big rows 2r, 2r+1 of [2 rows, 2W] */
static void spread_rows(float *restrict big, const float *restrict small, int W, float scale,
                        int accumulate, int lo, int hi) {
    for (int r = lo; r < hi; r++) {
        const float *s = small + (size_t)r * W;
        float *t = big + (size_t)r * 4 * W, *b = t + 2 * W;
        if (accumulate)
            for (int x = 0; x < W; x++) {
                float v = scale * s[x];
                t[2 * x] += v;
                t[2 * x + 1] += v;
                b[2 * x] += v;
                b[2 * x + 1] += v;
            }
        else
            for (int x = 0; x < W; x++) {
                float v = scale * s[x];
                t[2 * x] = v;
                t[2 * x + 1] = v;
                b[2 * x] = v;
                b[2 * x + 1] = v;
            }
    }
}

static void gather_rows(float *restrict small, const float *restrict big, int W, float scale,
                        int accumulate, int lo, int hi) {
    for (int r = lo; r < hi; r++) {
        float *s = small + (size_t)r * W;
        const float *t = big + (size_t)r * 4 * W, *b = t + 2 * W;
        if (accumulate)
            for (int x = 0; x < W; x++)
                s[x] += scale * ((t[2 * x] + t[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]));
        else
            for (int x = 0; x < W; x++)
                s[x] = scale * ((t[2 * x] + t[2 * x + 1]) + (b[2 * x] + b[2 * x + 1]));
    }
}

/* gather: dst = small[rows, W] from src = big[2 rows, 2W]; spread: the other way */
static void resample(float *dst, const float *src, int rows, int W, float scale,
                     int accumulate, int gather) {
    int nt = kc_threads_for(4.0 * rows * W, RESAMPLE_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(rows, KC_NT(), KC_TID(), &lo, &hi);
        if (gather) gather_rows(dst, src, W, scale, accumulate, lo, hi);
        else spread_rows(dst, src, W, scale, accumulate, lo, hi);
    }
}

void upsample2x_forward(float *out, const float *inp, int BC, int H, int W) {
    resample(out, inp, BC * H, W, 1.0f, 0, 0);
}

void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W) {
    if (!dinp) return;
    resample(dinp, dout, BC * H, W, 1.0f, 1, 1);
}

static void check_even(const char *op, int H, int W) {
    if (H % 2 || W % 2) {
        fprintf(stderr, "%s: H=%d and W=%d must both be even\n", op, H, W);
        abort();
    }
}

void avgpool2x2_forward(float *out, const float *inp, int BC, int H, int W) {
    check_even("avgpool2x2_forward", H, W);
    resample(out, inp, BC * (H / 2), W / 2, 0.25f, 0, 1);
}

void avgpool2x2_backward(float *dinp, const float *dout, int BC, int H, int W) {
    check_even("avgpool2x2_backward", H, W);
    if (!dinp) return;
    resample(dinp, dout, BC * (H / 2), W / 2, 0.25f, 1, 0);
}
