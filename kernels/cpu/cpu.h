/* cpu.h: what the CPU kernels share and nothing else sees: who owns the cores, how a
 * range is cut between threads, and one GEMM entry point.
 *
 * Threading model: one threading layer at a time. Two pools that both try to use every
 * core (OpenMP's and OpenBLAS's) oversubscribe a small machine and slow each other down,
 * so when OpenMP is available it owns the cores. Ops open one parallel region, cut their
 * work into per-thread pieces (images, rows, columns) and each thread runs a
 * single-threaded GEMM on its piece (kc_sgemm: the AVX-512 SGEMM, or OpenBLAS held at one
 * thread). Without OpenMP the ops run serially and OpenBLAS threads each GEMM itself.
 * Every piece is fixed by (size, thread count) and partial sums are reduced in thread
 * order, so results are deterministic for a given thread count. */
#ifndef DTRAIN_KERNELS_CPU_H
#define DTRAIN_KERNELS_CPU_H

#include <stddef.h>

/* The CPU backend's ops carry a cpu_ prefix (names.h): the plain names are kernels/dispatch.c's.
 * kernels.h is declared twice, plain and prefixed (whichever was included first), and the
 * mapping stays on, so that the definitions below and in every kernels/cpu file are the
 * cpu_ ones and are checked against the kernels.h prototypes. */
#include "kernels.h"
#undef DTRAIN_KERNELS_H
#include "names.h"
#include "kernels.h"

#ifdef __AVX512F__
#include <immintrin.h>

/* lanes [0, n) of a 16-lane vector, n clamped to [0, 16] */
static inline __mmask16 kc_lanes(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Runs BODY with NSEG a constant for the common counts of row segments that 16 consecutive
 * lanes of an image span (1 to 4, for rows of 4 pixels or tiles or more), a variable
 * otherwise: the gathers over segments (im2col packing, Winograd's tile transforms) then
 * unroll with their masks held in registers. */
#define KC_WITH_NSEG(n, BODY)                                                                  \
    switch (n) {                                                                               \
    case 1: { const int NSEG = 1; BODY; } break;                                              \
    case 2: { const int NSEG = 2; BODY; } break;                                              \
    case 3: { const int NSEG = 3; BODY; } break;                                              \
    case 4: { const int NSEG = 4; BODY; } break;                                              \
    default: { const int NSEG = n; BODY; } break;                                             \
    }
#endif

/* KC_OMP(omp parallel ...) opens a region; without OpenMP it vanishes and the block runs
 * once, as thread 0 of 1, so the same body serves both builds. */
#ifdef _OPENMP
#include <omp.h>
#define KC_OMP(directive) _Pragma(#directive)
#define KC_TID()          omp_get_thread_num()
#define KC_NT()           omp_get_num_threads()
#else
#define KC_OMP(directive)
#define KC_TID() 0
#define KC_NT()  1
#endif

/* Threads an op may use for its parallel loops (>= 1). */
int kc_threads(void);

/* Threads worth using for `work` units when one thread should get at least `grain`. */
int kc_threads_for(double work, double grain);

/* Tests only: nonzero makes kc_threads_for ignore the grain, so that tiny inputs still run
 * the parallel paths (partitions, per-thread partials and their reduction). */
void kc_force_parallel(int on);

/* The part-th of nparts contiguous, balanced pieces of [0, n): [*lo, *hi). */
static inline void kc_split(int n, int nparts, int part, int *lo, int *hi) {
    int base = n / nparts, extra = n % nparts;
    *lo = part * base + (part < extra ? part : extra);
    *hi = *lo + base + (part < extra);
}

/* The same for a flat array, in whole blocks of 16 floats so that each piece starts on a
 * cache line (two threads never write one line). */
static inline void kc_split16(size_t n, int nparts, int part, size_t *lo, size_t *hi) {
    size_t blocks = (n + 15) / 16, base = blocks / (size_t)nparts;
    size_t extra = blocks % (size_t)nparts, p = (size_t)part;
    size_t b0 = p * base + (p < extra ? p : extra), b1 = b0 + base + (p < extra);
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

/* Sum of x[0:n) in 16 independent lanes: a plain running sum is one serial dependency chain
 * that the compiler may not reorder, 16 lanes vectorize; the order is still fixed. */
static inline float kc_sum_lanes(const float *x, int n) {
    float acc[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) acc[k] += x[j + k];
    for (int k = 0; j + k < n; k++) acc[k] += x[j + k];
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += acc[k];
    return sum;
}

/* Floats rounded up to a whole 64-byte line, so sub-buffers carved out of one scratch
 * allocation stay aligned. */
static inline size_t kc_round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Row-major C[M,N] = alpha * op(A)[M,K] . op(B)[K,N] + beta * C, computed by the calling
 * thread only. ta/tb nonzero mean op = transpose; lda/ldb/ldc are the stored row lengths. */
void kc_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* A convolution's sizes (square kernel K, stride 1, zero padding pad), as conv2d.c,
 * conv2d_direct.c and the tests see them: the input with its zero border is PH x PW, the
 * output OH x OW (OH = H + 2 pad - K + 1), and the im2col matrix has CKK = C K K rows of
 * OHW = OH OW columns. */
typedef struct {
    int C, H, W, OC, K, pad;
    int PH, PW;   /* padded input */
    int OH, OW;   /* output */
    int CKK, OHW; /* rows and columns of the columns */
} kc_conv_shape;

static inline kc_conv_shape kc_conv_shape_of(int C, int H, int W, int OC, int K, int pad) {
    kc_conv_shape s = {.C = C, .H = H, .W = W, .OC = OC, .K = K, .pad = pad};
    s.PH = H + 2 * pad;
    s.PW = W + 2 * pad;
    s.OH = s.PH - K + 1;
    s.OW = s.PW - K + 1;
    s.CKK = C * K * K;
    s.OHW = s.OH * s.OW;
    return s;
}

/* A convolution's input seen as its im2col matrix, never built where the GEMM can read the
 * image itself: row r = (c, ky, kx) of C*K*K, column p = (y, x) of OH*OW, value
 * pad[c][y + ky][x + kx], pad being the image with its zero border, [C, PH, PW]. */
typedef struct {
    const float *pad;
    int C, K, PH, PW, OH, OW;
} kc_cols;

/* transposed = 0: C[M, OH*OW] = A[M, C*K*K] . cols + beta * C
 * transposed = 1: C[M, C*K*K] = A[M, OH*OW] . cols^T + beta * C
 * by the calling thread. col is scratch of kc_sgemm_cols_floats(cols) floats, used only where
 * the GEMM is OpenBLAS's (the columns are built there first). */
void kc_sgemm_cols(int transposed, int M, const float *A, int lda, const kc_cols *cols, float beta,
                   float *C, int ldc, float *col);
size_t kc_sgemm_cols_floats(const kc_cols *cols);

#ifdef __AVX512F__
/* Direct convolutions (conv2d_direct.c, AVX-512 builds only) for layers with one input or one
 * output channel, K = 3 or 5, pad <= K - 1 (conv_direct_applies says whether); conv2d sends
 * them there first. Arguments as conv2d_forward/backward's. */
int conv_direct_applies(int C, int OC, int K, int pad);
size_t conv_direct_scratch_floats(int B, int C, int H, int W, int OC, int K, int pad);
void conv_direct_forward(float *out, const float *inp, const float *w, const float *b,
                         float *scratch, int B, int C, int H, int W, int OC, int K, int pad);
void conv_direct_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float *scratch, int B, int C, int H, int W, int OC, int K,
                          int pad);
#endif

/* 3x3 convolutions with padding 1 by Winograd F(4x4, 3x3) (conv3x3_winograd.c); conv2d
 * sends the others of that shape there. Arguments as conv2d_forward/backward's with K = 3,
 * pad = 1. */
size_t winograd3x3_scratch_floats(int B, int C, int H, int W, int OC);
void winograd3x3_forward(float *out, const float *inp, const float *w, const float *b,
                         float *scratch, int B, int C, int H, int W, int OC);
void winograd3x3_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, float *scratch, int B, int C, int H, int W, int OC);

/* 2x2 blocks (resample.c), threaded over small rows. gather = 1: dst = small[rows, W]
 * (=|+=) scale * the (top pair) + (bottom pair) sum of each block of src = big[2 rows, 2W];
 * gather = 0: dst = big (=|+=) scale * each small pixel of src over its block. accumulate
 * picks += over =. Upsampling and average pooling (pool.c) are these two loops. */
void kc_resample2x(float *dst, const float *src, int rows, int W, float scale, int accumulate,
                   int gather);

/* Nonzero when kc_sgemm runs OpenBLAS: on CPUs without AVX-512, or when the environment
 * says DTRAIN_SGEMM=openblas. Otherwise it runs kc_sgemm_avx512 (sgemm_avx512.c). */
int kc_gemm_is_openblas(void);
#ifdef __AVX512F__
void kc_sgemm_avx512(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
void kc_sgemm_cols_avx512(int transposed, int M, const float *A, int lda, const kc_cols *cols,
                          float beta, float *C, int ldc);
size_t kc_sgemm_avx512_packed_a_floats(int M, int K);
void kc_sgemm_avx512_pack_a(float *dst, int ta, int M, int K, const float *A, int lda);
void kc_sgemm_avx512_packed(int M, int N, int K, const float *packed_a, const float *B, int ldb,
                            int tb, float beta, float *C, int ldc);
#endif

/* An A used for many products, packed once: kc_pack_a writes op(A)[M,K] into dst (at least
 * kc_packed_a_floats(M, K) floats, 64-byte aligned), and kc_sgemm_packed then computes
 * C[M,N] = op(A) . op(B) + beta * C from it, by the calling thread. Where the GEMM is
 * OpenBLAS's the "packed" A is op(A) copied row-major. */
size_t kc_packed_a_floats(int M, int K);
void kc_pack_a(float *dst, int ta, int M, int K, const float *A, int lda);
void kc_sgemm_packed(int M, int N, int K, const float *packed_a, const float *B, int ldb, int tb,
                     float beta, float *C, int ldc);

/* The same product, with the caller's threads: C is cut along its longer side and each
 * thread multiplies its piece. When bias is given (length N) C is first filled with it row
 * by row and beta is ignored (treated as 1 after the fill). */
void kc_sgemm_parallel(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc, const float *bias);

#endif
