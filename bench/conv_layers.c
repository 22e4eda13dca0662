/* conv_layers.c: microseconds per image of the models' convolution layers, forward and
 * backward, through conv2d_forward/conv2d_backward (whichever path conv2d picks: direct,
 * Winograd or im2col), on 1 thread by default.
 *
 *   bench_conv_layers [THREADS=1] [REPEATS=200]
 *
 * The backward pass computes what training needs: dw and db always, dinp except for a
 * model's first layer. Prints the best of 3 rounds of REPEATS calls each. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"
#include "util.h" /* now_sec */

typedef struct {
    const char *what;
    int B, C, H, W, OC, K, pad, dinp;
} layer;

static const layer layers[] = {
    {"lenet conv1 (1->6, 5x5, pad 2), batch 32", 32, 1, 28, 28, 6, 5, 2, 0},
    {"lenet conv2 (6->16, 5x5), batch 32", 32, 6, 14, 14, 16, 5, 0, 1},
    {"unet conv in (1->32, 3x3), batch 64", 64, 1, 28, 28, 32, 3, 1, 0},
    {"unet conv out (32->1, 3x3), batch 64", 64, 32, 28, 28, 1, 3, 1, 1},
    {"unet block conv (32->32, 3x3), batch 64", 64, 32, 28, 28, 32, 3, 1, 1},
};

static float *filled(size_t n, unsigned seed) {
    float *p = kernels_alloc(n);
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
    return p;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, repeats = argc > 2 ? atoi(argv[2]) : 200;
    if (threads < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_conv_layers [THREADS >= 1] [REPEATS >= 1]\n");
        return 2;
    }
    kernels_set_threads(threads);
    printf("%-44s %12s %12s   (%d thread%s)\n", "layer", "fwd us/img", "bwd us/img", threads,
           threads > 1 ? "s" : "");
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const layer *l = &layers[i];
        int OH = l->H + 2 * l->pad - l->K + 1, OW = l->W + 2 * l->pad - l->K + 1;
        size_t ni = (size_t)l->B * l->C * l->H * l->W, no = (size_t)l->B * l->OC * OH * OW;
        size_t nw = (size_t)l->OC * l->C * l->K * l->K;
        float *x = filled(ni, 1), *w = filled(nw, 2), *b = filled((size_t)l->OC, 3);
        float *dy = filled(no, 4), *y = kernels_alloc(no), *dx = kernels_alloc(ni);
        float *dw = kernels_alloc(nw), *db = kernels_alloc((size_t)l->OC);
        float *scratch = kernels_alloc(conv2d_scratch_floats(l->B, l->C, l->H, l->W, l->OC, l->K, l->pad));
        double best_f = 1e30, best_b = 1e30;
        for (int round = 0; round < 3; round++) {
            double t0 = now_sec();
            for (int r = 0; r < repeats; r++)
                conv2d_forward(y, x, w, b, scratch, l->B, l->C, l->H, l->W, l->OC, l->K, l->pad);
            double t1 = now_sec();
            for (int r = 0; r < repeats; r++)
                conv2d_backward(l->dinp ? dx : NULL, dw, db, dy, x, w, scratch, l->B, l->C, l->H,
                                l->W, l->OC, l->K, l->pad);
            double t2 = now_sec();
            if (t1 - t0 < best_f) best_f = t1 - t0;
            if (t2 - t1 < best_b) best_b = t2 - t1;
        }
        double per = 1e6 / ((double)repeats * l->B);
        printf("%-44s %12.1f %12.1f\n", l->what, best_f * per, best_b * per);
        kernels_free(x), kernels_free(w), kernels_free(b), kernels_free(dy), kernels_free(y);
        kernels_free(dx), kernels_free(dw), kernels_free(db), kernels_free(scratch);
    }
    return 0;
}
