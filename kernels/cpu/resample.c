/* resample.c: changes of resolution by 2x2 blocks over planes [BC, H, W]: nearest-neighbour
 * 2x upsampling here, and the two loops that 2x2 average pooling (pool.c) shares with it.
 *
 * The two ops are each other's transposes up to a factor 1/4: upsampling copies each small
 * pixel into a 2x2 block, pooling averages a 2x2 block into one small pixel. So there are
 * two loops, both over rows of the small map:
 *   spread: big 2x2 block  (=|+=) scale * small pixel    upsample forward, avgpool backward
 *   gather: small pixel    (=|+=) scale * sum of block   avgpool forward, upsample backward
 * A block is summed as (top pair) + (bottom pair) whatever the thread count, and threads
 * take whole small rows, so they never write the same float and results are deterministic.
 * Written out once per row with the overwrite and accumulate cases as separate loops: an
 * overwrite must not read its (uninitialised) output. */
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

void kc_resample2x(float *dst, const float *src, int rows, int W, float scale, int accumulate,
                   int gather) {
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
    kc_resample2x(out, inp, BC * H, W, 1.0f, 0, 0);
}

void upsample2x_backward(float *dinp, const float *dout, int BC, int H, int W) {
    if (!dinp) return;
    kc_resample2x(dinp, dout, BC * H, W, 1.0f, 1, 1);
}
