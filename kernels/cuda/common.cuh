/* common.cuh: what the CUDA kernels share and nothing else sees: the backend context
 * (stream, cuBLAS handle, workspace), error checks, launch and reduction helpers.
 *
 * Included first by every .cu file; after it the plain kernels.h names (linear_forward,
 * ...) mean the cuda_ symbols (see kernels_cuda.h).
 *
 * Built two ways: by nvcc for the GPU, and, with DTRAIN_CUDA_EMU, as plain C++ against
 * tests/gpu/emu/cuda_emu.h, which runs each kernel's threads as fibers on the CPU so that
 * the kernels' logic is tested on machines without a GPU. Hence kernels are launched through LAUNCH
 * rather than <<<>>>, and use only what the emulator provides: 1-D grids and blocks of
 * whole warps (2-D blocks where noted), static __shared__ arrays, __syncthreads and full-
 * warp shuffles reached by every thread of the block. */
#ifndef DTRAIN_KERNELS_CUDA_COMMON_CUH
#define DTRAIN_KERNELS_CUDA_COMMON_CUH

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef DTRAIN_CUDA_EMU
#include "cuda_emu.h"
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

#include "kernels_cuda.h"
#include "names.h" /* from here on, linear_forward means cuda_linear_forward */

/* ---- errors ----------------------------------------------------------------------- */

/* Prints "dtrain: cuda: <what> at file:line: <why>" and aborts. */
[[noreturn]] void cu_die(const char *what, const char *file, int line, const char *why);

#define CU_CHECK(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) cu_die(#call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
    } while (0)

#define BLAS_CHECK(call)                                                                 \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            cu_die(#call, __FILE__, __LINE__, cublasGetStatusString(s_));                \
    } while (0)

/* A launch error (bad configuration, no device) shows at once; faults inside a kernel show
 * at the next synchronising call. */
void cu_check_launch(const char *kernel, const char *file, int line);

#ifdef DTRAIN_CUDA_EMU
#define LAUNCH(kernel, grid, block, ...) \
    emu_launch(#kernel, kernel, dim3(grid), dim3(block), cu_stream(), __VA_ARGS__)
#else
#define LAUNCH(kernel, grid, block, ...)                                    \
    do {                                                                    \
        kernel<<<(grid), (block), 0, cu_stream()>>>(__VA_ARGS__);           \
        cu_check_launch(#kernel, __FILE__, __LINE__);                       \
    } while (0)
#endif

/* ---- context (backend.cu) ----------------------------------------------------------- */

cudaStream_t cu_stream(void);
cublasHandle_t cu_blas(void);

/* The backend's scratch, at least `floats` long, valid until the next cu_ws call. Ops run
 * in order on one stream, so one buffer serves them all; an op takes what it needs in one
 * call and carves it up. */
float *cu_ws(size_t floats);

/* Device-side error bits, reported at the next synchronising call. */
enum { CU_ERR_TOKEN = 1, CU_ERR_TARGET = 2 };
int *cu_err_flag(void);

/* Reduces part[n] (doubles, device) in order into the device scalar and copies it to the
 * host together with the error bits, which are reported (and abort) if set. The two halves
 * apart: the sum stays on the device (for a kernel to read), then the host fetches it. */
double cu_sum_to_host(const double *part, int n);
const double *cu_sum_on_device(const double *part, int n);
double cu_fetch_sum(void);

/* Row-major GEMMs on the stream: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, op =
 * transpose when ta/tb; lda/ldb/ldc are row lengths as stored. beta = 0 ignores C (NaN in
 * it does not propagate). The strided form runs `batch` products, matrices sA/sB/sC floats
 * apart. */
void rm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void rm_gemm_strided(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     long long sA, const float *B, int ldb, long long sB, float beta, float *C,
                     int ldc, long long sC, int batch);

/* ---- launch shapes ---------------------------------------------------------------- */

#define KC_BLOCK 256         /* threads per block for 1-D kernels */
#define KC_MAX_BLOCKS 16384u /* grid-stride kernels: enough blocks to fill any GPU */

static inline unsigned kc_blocks(size_t n) {
    size_t b = (n + KC_BLOCK - 1) / KC_BLOCK;
    if (b == 0) b = 1;
    return b > KC_MAX_BLOCKS ? KC_MAX_BLOCKS : (unsigned)b;
}

/* every index of [0, n) once, across the whole grid */
#define GRID_STRIDE(i, n)                                                          \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- 2x2 windows (pool.cu, resample.cu) --------------------------------------------- */

/* Window of small pixel i (of [BC, OH, OW], OW = W/2): its top-left index in [BC, H, W].
 * H = 2 OH, so the flat small row r = bc OH + oy maps to big row 2r. */
static __device__ __forceinline__ size_t window_at(size_t i, int OW) {
    size_t r = i / OW, x = i % OW;
    return 2 * r * (2 * (size_t)OW) + 2 * x;
}

/* The 2x2-block loops of resample.cu over n output elements, OW = the small map's width:
 * gather = 1: small[i] (=|+=) scale * its block's (top pair) + (bottom pair) in big;
 * gather = 0: big[j] (=|+=) scale * its block's small pixel. accumulate picks += over =.
 * Upsampling and average pooling (pool.cu) are these two. */
void cu_resample2x(float *dst, const float *src, size_t n, int OW, float scale, int accumulate,
                   int gather);

/* ---- reductions ------------------------------------------------------------------- */

/* Butterfly sum over the 32 lanes: every lane ends with the same, bitwise identical value
 * (each step adds the same two numbers on both partners), so the order is fixed. */
template <class T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <class T> __device__ __forceinline__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

/* Sum over a 1-D block of whole warps; every thread gets the total. The first barrier
 * protects `part` from a previous call still being read. */
template <class T> __device__ T block_sum(T v) {
    __shared__ T part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_sum(lane < nw ? part[lane] : T(0));
}

template <class T> __device__ T block_max(T v) {
    __shared__ T part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_max(lane < nw ? part[lane] : part[0]);
}

/* A dense row-major matrix as a functor f(r, c), for the sums below. */
struct mat_f {
    const float *x;
    int ld;
    __device__ float operator()(int r, int c) const { return x[(size_t)r * ld + c]; }
};

/* dst[r] = sum_c f(r, c) (or += when accumulate): one block per row, lanes stride the
 * columns, block_sum combines them in a fixed order. */
template <class F> __global__ void rowsum_k(float *dst, int accumulate, int cols, F f) {
    int r = blockIdx.x;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += f(r, c);
    s = block_sum(s);
    if (threadIdx.x == 0) dst[r] = accumulate ? dst[r] + s : s;
}

template <class F> void rowsum(float *dst, int accumulate, int rows, int cols, F f) {
    if (rows <= 0) return;
    LAUNCH(rowsum_k<F>, rows, KC_BLOCK, dst, accumulate, cols, f);
}

/* Column sums dst[c] += sum_r f(r, c) in two passes, without atomics: blocks of 32
 * columns x 8 row lanes sum fixed chunks of rows into part[chunk, cols], then one thread
 * per column adds the chunks in order. The chunking depends on `rows` only. */
#define CS_LANES 8
#define CS_MAX_CHUNKS 128

static inline int colsum_chunk_rows(int rows) {
    int per = (rows + CS_MAX_CHUNKS - 1) / CS_MAX_CHUNKS;
    return per < 64 ? 64 : per;
}
static inline int colsum_chunks(int rows) {
    int per = colsum_chunk_rows(rows);
    return rows <= 0 ? 0 : (rows + per - 1) / per;
}
/* scratch floats colsum_add needs */
static inline size_t colsum_part_floats(int rows, int cols) {
    return (size_t)colsum_chunks(rows) * (size_t)(cols > 0 ? cols : 0);
}

/* 2-D blocks: x = column in the tile, y = row lane */
template <class F>
__global__ void colsum_part_k(float *part, int rows, int cols, int chunk_rows, F f) {
    __shared__ float sh[CS_LANES][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * chunk_rows;
    int r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    float s = 0.0f;
    if (c < cols)
        for (int r = r0 + threadIdx.y; r < r1; r += CS_LANES) s += f(r, c);
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < CS_LANES; k++) t += sh[k][threadIdx.x];
        part[(size_t)blockIdx.y * cols + c] = t;
    }
}

__global__ void colsum_finish_k(float *dst, const float *part, int chunks, int cols);

/* dst[cols] += column sums of f over rows; part: colsum_part_floats(rows, cols) floats */
template <class F> void colsum_add(float *dst, float *part, int rows, int cols, F f) {
    if (rows <= 0 || cols <= 0) return;
    int per = colsum_chunk_rows(rows), chunks = colsum_chunks(rows);
    dim3 grid((unsigned)(cols + 31) / 32, (unsigned)chunks), block(32, CS_LANES);
    LAUNCH(colsum_part_k<F>, grid, block, part, rows, cols, per, f);
    LAUNCH(colsum_finish_k, (unsigned)(cols + KC_BLOCK - 1) / KC_BLOCK, KC_BLOCK, dst, part,
           chunks, cols);
}

#endif
