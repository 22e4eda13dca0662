/* cuda_emu.h: just enough of CUDA, the CUDA runtime and cuBLAS to run kernels/cuda on CPU
 * threads, so that the kernels' logic (indexing, reductions, barriers, accumulation) is
 * tested on machines without a GPU. Not a simulator: no memory model, no timing, no
 * device/host distinction. It proves that the code computes the right numbers when every
 * thread of a block runs, and nothing about performance or CUDA-specific faults.
 *
 * Model: one OS thread per CUDA thread of a block; the blocks of a grid run one after the
 * other, so a `__shared__` variable becomes a function-local static, shared by exactly the
 * threads of the running block. __syncthreads is a barrier over the block, warp shuffles
 * exchange through a per-warp slot array between two barriers over the warp. A kernel
 * that lets some threads skip a barrier the others reach hangs here (it is undefined
 * behaviour on a GPU too). Blocks must be whole warps. */
#ifndef DTRAIN_CUDA_EMU_H
#define DTRAIN_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

void __syncthreads(void);
uint64_t emu_shfl_bits(uint64_t v, int src_lane);

template <class T> T emu_shfl(T v, int src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl_bits(b, src);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}

template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    (void)mask;
    return emu_shfl(v, (int)(threadIdx.x & 31) ^ lane_mask);
}

template <class T> T __shfl_sync(unsigned mask, T v, int src) {
    (void)mask;
    return emu_shfl(v, src & 31);
}

static inline int atomicOr(int *p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* ---- launch ------------------------------------------------------------------------- */

typedef void (*emu_body)(void *ctx);
void emu_run(dim3 grid, dim3 block, emu_body body, void *ctx);

template <class Tuple, class K> struct emu_call {
    K kernel;
    Tuple args;
    static void run(void *self) {
        emu_call *c = (emu_call *)self;
        Tuple copy = c->args; /* each thread gets its own parameters, as on the GPU */
        std::apply(c->kernel, copy);
    }
};

template <class... P, class... A>
void emu_launch(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel argument count");
    typedef std::tuple<P...> Tuple;
    emu_call<Tuple, void (*)(P...)> call{kernel, Tuple(static_cast<P>(args)...)};
    emu_run(grid, block, &emu_call<Tuple, void (*)(P...)>::run, &call);
}

/* ---- runtime ------------------------------------------------------------------------ */

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
typedef struct emu_stream *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost,
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice,
    cudaMemcpyDefault
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k,
                            cudaStream_t s);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);

/* ---- cuBLAS (column-major, as the real one) ----------------------------------------- */

typedef struct emu_blas *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0 };
typedef enum { CUBLAS_OP_N, CUBLAS_OP_T } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH } cublasMath_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sA, const float *B, int ldb, long long sB,
                                         const float *beta, float *C, int ldc, long long sC,
                                         int batch);

#endif
