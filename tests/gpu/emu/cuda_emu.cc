/* cuda_emu.cc: the emulator's threads, barriers, memory and reference GEMM (cuda_emu.h). */
#include "cuda_emu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

/* the running launch: one block barrier, one barrier and 32 slots per warp */
struct emu_warp {
    pthread_barrier_t bar;
    uint64_t slot[32];
};
static pthread_barrier_t g_block_bar;
static std::vector<emu_warp> *g_warps;
static thread_local int t_linear; /* this thread's index in its block */

static void die(const char *what) {
    fprintf(stderr, "cuda_emu: %s\n", what);
    abort();
}

void __syncthreads(void) { pthread_barrier_wait(&g_block_bar); }

uint64_t emu_shfl_bits(uint64_t v, int src) {
    emu_warp &w = (*g_warps)[t_linear / 32];
    w.slot[t_linear % 32] = v;
    pthread_barrier_wait(&w.bar); /* every lane has written */
    uint64_t r = w.slot[src];
    pthread_barrier_wait(&w.bar); /* every lane has read before the next exchange writes */
    return r;
}

struct emu_thread_arg {
    dim3 grid, block;
    emu_body body;
    void *ctx;
    int linear;
};

static void *emu_thread(void *p) {
    emu_thread_arg *a = (emu_thread_arg *)p;
    t_linear = a->linear;
    blockDim = a->block;
    gridDim = a->grid;
    unsigned bx = a->block.x, by = a->block.y, t = (unsigned)a->linear;
    threadIdx = uint3{t % bx, t / bx % by, t / (bx * by)};
    for (unsigned z = 0; z < a->grid.z; z++)
        for (unsigned y = 0; y < a->grid.y; y++)
            for (unsigned x = 0; x < a->grid.x; x++) {
                blockIdx = uint3{x, y, z};
                a->body(a->ctx);
                pthread_barrier_wait(&g_block_bar); /* the block is done: statics are free */
            }
    return NULL;
}

void emu_run(dim3 grid, dim3 block, emu_body body, void *ctx) {
    int nt = (int)(block.x * block.y * block.z);
    if (nt <= 0 || nt % 32 || nt > 1024) die("blocks must be 32 to 1024 threads, whole warps");
    if (!grid.x || !grid.y || !grid.z) die("empty grid");
    std::vector<emu_warp> warps((size_t)nt / 32);
    for (emu_warp &w : warps) pthread_barrier_init(&w.bar, NULL, 32);
    pthread_barrier_init(&g_block_bar, NULL, (unsigned)nt);
    g_warps = &warps;
    std::vector<emu_thread_arg> args((size_t)nt);
    std::vector<pthread_t> th((size_t)nt);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < nt; i++) {
        args[i] = emu_thread_arg{grid, block, body, ctx, i};
        if (pthread_create(&th[i], &attr, emu_thread, &args[i])) die("pthread_create failed");
    }
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&g_block_bar);
    for (emu_warp &w : warps) pthread_barrier_destroy(&w.bar);
    g_warps = NULL;
}

/* ---- runtime: host memory stands in for the device's ------------------------------------ */

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : 101; }
cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, (bytes + 255) / 256 * 256); /* NaN garbage, like fresh device memory */
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t) {
    memset(p, v, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t) {
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k) {
    return cudaMemcpyAsync(dst, src, bytes, k, NULL);
}
cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = NULL;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }

/* ---- cuBLAS ------------------------------------------------------------------------------ */

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = NULL;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) {
    return s == 7 ? "CUBLAS_STATUS_INVALID_VALUE (emulated)" : s ? "emulated error" : "success";
}

/* column-major element (r, c) of op(X) */
static float at(const float *X, int ld, cublasOperation_t t, int r, int c) {
    return t == CUBLAS_OP_N ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

static int at_least(int ld, int rows) { return ld >= (rows > 1 ? rows : 1); }

/* C = alpha op(A) op(B) + beta C, with beta = 0 ignoring C as cuBLAS does; double sums.
 * Arguments the real cuBLAS rejects (CUBLAS_STATUS_INVALID_VALUE, 7) are rejected here too,
 * so that a wrong leading dimension fails in the emulated tests. */
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (m < 0 || n < 0 || k < 0 || !at_least(lda, ta == CUBLAS_OP_N ? m : k) ||
        !at_least(ldb, tb == CUBLAS_OP_N ? k : n) || !at_least(ldc, m))
        return 7;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) s += (double)at(A, lda, ta, i, l) * at(B, ldb, tb, l, j);
            float *c = &C[(size_t)j * ldc + i];
            *c = *beta == 0.0f ? (float)(*alpha * s) : (float)(*alpha * s + *beta * (double)*c);
        }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sA, const float *B, int ldb, long long sB,
                                         const float *beta, float *C, int ldc, long long sC,
                                         int batch) {
    if (batch < 0) return 7;
    for (int i = 0; i < batch; i++) {
        cublasStatus_t st = cublasSgemm(h, ta, tb, m, n, k, alpha, A + i * sA, lda, B + i * sB,
                                        ldb, beta, C + i * sC, ldc);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}
