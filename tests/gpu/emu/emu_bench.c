/* emu_bench.c: what one launch of kernels/cuda costs on the emulator, per op shape: a
 * timing printout, not a test (docs/cuda.md has the figures, old emulator against new).
 * Uses only kernels_cuda.h, so the same file builds against any emulator version.
 *   emu_bench [repeats]      (default 20) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cuda/kernels_cuda.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *dev(size_t n) { return cuda_kernels_alloc(n); }

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (reps <= 0) {
        fprintf(stderr, "emu_bench: repeats must be > 0\n");
        return 2;
    }
    const int N = 64, C = 256, OC = 64;
    const size_t big = (size_t)1 << 20;
    float *x = dev(big), *y = dev(big), *w = dev((size_t)C * OC), *b = dev(OC),
          *lw = dev(C), *lb = dev(C), *mean = dev(N), *rstd = dev(N);
    cuda_kernels_fill(x, 0.5f, big);
    cuda_kernels_fill(w, 0.01f, (size_t)C * OC);
    cuda_kernels_fill(lw, 1.0f, C);
    cuda_kernels_synchronize();
    printf("%-42s %12s\n", "op (shape)", "ms per call");
    for (int op = 0; op < 4; op++) {
        const char *name = "";
        double t0 = now_s();
        for (int r = 0; r < reps; r++) {
            switch (op) {
            case 0: name = "fill (256 floats: 1 block)"; cuda_kernels_fill(y, 1.0f, 256); break;
            case 1: name = "relu_forward (1M floats: 4096 blocks)"; cuda_relu_forward(y, x, big); break;
            case 2:
                name = "layernorm_forward (64 x 256: shuffles)";
                cuda_layernorm_forward(y, mean, rstd, x, lw, lb, N, C);
                break;
            default:
                name = "linear_forward (64 x 256 -> 64, bias)";
                cuda_linear_forward(y, x, w, b, N, C, OC);
                break;
            }
        }
        cuda_kernels_synchronize();
        printf("%-42s %12.3f\n", name, (now_s() - t0) * 1e3 / reps);
    }
    return 0;
}
