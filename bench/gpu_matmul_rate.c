/* gpu_matmul_rate.c: the GPU's measured matmul rate through the CUDA backend's GEMM
 * (cuBLAS SGEMM behind cuda_linear_forward, no bias), in fp32 and TF32, for square
 * products: the reference a training run's achieved TFLOP/s is compared with.
 *   gpu_matmul_rate [n ...]    (default 4096 8192)
 *   gpu_matmul_rate --probe    what the CUDA runtime sees: the GPUs, or its error */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/kernels_cuda.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void rate(int n, int tf32) {
    size_t nn = (size_t)n * n;
    float *a = cuda_kernels_alloc(nn), *w = cuda_kernels_alloc(nn), *out = cuda_kernels_alloc(nn);
    cuda_kernels_fill(a, 0.5f, nn);
    cuda_kernels_fill(w, 0.25f, nn);
    cuda_kernels_set_tf32(tf32);
    cuda_linear_forward(out, a, w, NULL, n, n, n); /* warm-up: cuBLAS picks its kernel */
    cuda_kernels_synchronize();
    int reps = 0;
    double t0 = now_s(), t;
    do {
        cuda_linear_forward(out, a, w, NULL, n, n, n);
        reps++;
        cuda_kernels_synchronize();
        t = now_s() - t0;
    } while (t < 1.0 && reps < 200);
    double tflops = 2.0 * n * (double)n * n * reps / t / 1e12;
    printf("matmul %5d x %5d x %5d %-4s %8.2f TFLOP/s (%d reps, %.3f s)\n", n, n, n,
           tf32 ? "tf32" : "fp32", tflops, reps, t);
    cuda_kernels_set_tf32(0);
    cuda_kernels_free(a);
    cuda_kernels_free(w);
    cuda_kernels_free(out);
}

/* the runtime's own view, with its error code: what nvidia-smi cannot tell */
static int probe(void) {
    int n = 0, drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    cudaError_t e = cudaGetDeviceCount(&n);
    printf("CUDA runtime %d, driver API %d\n", rt, drv);
    if (e != cudaSuccess) {
        printf("FAIL cudaGetDeviceCount: error %d: %s\n", (int)e, cudaGetErrorString(e));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
            printf("device %d: %s, sm_%d%d, %.1f GiB, %d SMs\n", i, p.name, p.major, p.minor,
                   (double)p.totalGlobalMem / (1 << 30), p.multiProcessorCount);
    }
    return n > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--probe")) return probe();
    if (!cuda_kernels_available()) {
        printf("FAIL gpu_matmul_rate: no usable CUDA device\n");
        return 1;
    }
    int def[] = {4096, 8192}, nd = argc > 1 ? argc - 1 : 2;
    for (int i = 0; i < nd; i++) {
        int n = argc > 1 ? atoi(argv[i + 1]) : def[i];
        if (n <= 0 || n > 32768) {
            fprintf(stderr, "gpu_matmul_rate: size '%s' must be 1 to 32768\n", argv[i + 1]);
            return 2;
        }
        rate(n, 0);
        rate(n, 1);
    }
    return 0;
}
