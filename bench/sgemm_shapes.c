/* sgemm_shapes.c: dtrain's own single-thread SGEMM (kernels/cpu/sgemm_avx512.c) against
 * OpenBLAS's cblas_sgemm on one thread, on a large square product and on the shapes our
 * models run: the U-Net's Winograd products (per chunk of tiles), LeNet's im2col products
 * (per image), the linear layers (per step).
 *
 *   bench_sgemm_shapes [REPEATS=20]
 *
 * Prints GFLOP/s of each, best of REPEATS calls, and the ratio ours / OpenBLAS. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#include "kernels.h"
#include "util.h" /* now_sec */

#ifndef __AVX512F__
int main(void) {
    fprintf(stderr, "bench_sgemm_shapes: built without AVX-512, so dtrain's GEMMs are OpenBLAS's\n");
    return 0;
}
#else

typedef struct {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    {"square 1024", 0, 0, 1024, 1024, 1024},
    {"unet winograd fwd 28x28 96->32", 0, 0, 32, 28, 96},
    {"unet winograd dw 28x28 96->32", 0, 1, 32, 96, 28},
    {"unet winograd fwd 14x14 64->64", 0, 0, 64, 32, 64},
    {"lenet conv2 fwd (im2col 16x150)", 0, 0, 16, 100, 150},
    {"lenet conv2 dcol", 1, 0, 150, 100, 16},
    {"mlp fc1 fwd (batch 32)", 0, 1, 32, 256, 784},
    {"mlp fc1 dw (batch 32)", 1, 0, 256, 784, 32},
    {"gpt qkv fwd (256 tokens, 128)", 0, 1, 256, 384, 128},
    {"gpt mlp dw (256 tokens)", 1, 0, 512, 128, 256},
};

static double best_rate(const shape *s, int ours, const float *a, const float *b, float *c,
                        int repeats) {
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double best = 0, flops = 2.0 * s->M * (double)s->N * s->K;
    for (int r = 0; r <= repeats; r++) {
        /* enough calls per timing that the clock's resolution does not matter */
        int calls = (int)(2e8 / flops) + 1;
        double t0 = now_sec();
        for (int i = 0; i < calls; i++) {
            if (ours)
                kc_sgemm_avx512(s->ta, s->tb, s->M, s->N, s->K, 1.0f, a, lda, b, ldb, 0.0f, c,
                                s->N);
            else
                cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                            s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, a, lda, b,
                            ldb, 0.0f, c, s->N);
        }
        double rate = flops * calls / (now_sec() - t0) * 1e-9;
        if (r > 0 && rate > best) best = rate; /* r = 0 warms caches and buffers */
    }
    return best;
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 20;
    if (repeats < 1) {
        fprintf(stderr, "bench_sgemm_shapes: REPEATS must be a positive integer\n");
        return 2;
    }
    openblas_set_num_threads(1);
    unsigned st = 1;
    size_t most = 1024 * 1024;
    float *a = kernels_alloc(most), *b = kernels_alloc(most), *c = kernels_alloc(most);
    for (size_t i = 0; i < most; i++) {
        st = st * 1664525u + 1013904223u;
        a[i] = b[i] = (float)(st >> 8) / (float)(1u << 23) - 1.0f;
    }
    printf("%-34s %6s %6s %6s %2s%2s %9s %9s %6s\n", "shape", "M", "N", "K", "tA", "tB",
           "dtrain", "OpenBLAS", "ratio");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        double ours = best_rate(s, 1, a, b, c, repeats);
        double blas = best_rate(s, 0, a, b, c, repeats);
        printf("%-34s %6d %6d %6d %2d%2d %9.1f %9.1f %5.2fx\n", s->what, s->M, s->N, s->K, s->ta,
               s->tb, ours, blas, ours / blas);
    }
    kernels_free(a);
    kernels_free(b);
    kernels_free(c);
    return 0;
}
#endif
