/* backend.c: threads, memory and the GEMM entry points of the CPU backend. */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "kernels.h"

/* OpenBLAS and OpenMP keep their thread counts process-wide, so ours is process-wide too:
 * one value that mirrors what was handed to them. */
static int g_threads;
static int g_force_parallel; /* tests only, see cpu.h */
static pthread_once_t g_threads_once = PTHREAD_ONCE_INIT;

static int default_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads(); /* OMP_NUM_THREADS, else the cores we may run on */
#else
    return openblas_get_num_threads();
#endif
}

static void apply_threads(int n) {
    g_threads = n;
#ifdef _OPENMP
    /* OpenMP owns the cores; each thread's GEMM must not fan out again (cpu.h) */
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
#else
    openblas_set_num_threads(n);
#endif
}

/* An op may run before anyone chose a count: it must still not oversubscribe. */
static void init_threads(void) { apply_threads(default_threads()); }

/* n < 1 selects the default (OMP_NUM_THREADS, else every core we may run on). */
void kernels_set_threads(int n) {
    pthread_once(&g_threads_once, init_threads);
    apply_threads(n >= 1 ? n : default_threads());
}

int kernels_get_threads(void) { return kc_threads(); }

int kc_threads(void) {
    pthread_once(&g_threads_once, init_threads);
    return g_threads;
}

void kc_force_parallel(int on) { g_force_parallel = on; }

int kc_threads_for(double work, double grain) {
    int n = kc_threads();
    if (g_force_parallel) return n;
    double fit = work / grain;
    if (fit < 2) return 1;
    return fit < n ? (int)fit : n;
}

/* ---- memory ------------------------------------------------------------------------- */

float *kernels_alloc(size_t nfloats) {
    if (nfloats > (SIZE_MAX - 64) / sizeof(float)) {
        fprintf(stderr, "kernels_alloc: %zu floats overflow size_t\n", nfloats);
        abort();
    }
    /* aligned_alloc wants a multiple of the alignment; 0 floats still gets a real line */
    size_t bytes = (nfloats * sizeof(float) + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) {
        fprintf(stderr, "kernels_alloc: out of memory allocating %zu floats (%zu bytes)\n", nfloats,
                bytes);
        abort();
    }
    memset(p, 0, bytes);
    return p;
}

void kernels_free(float *p) { free(p); }

/* host memory is the backend's memory: plain copies, nothing to wait for */
void kernels_to_device(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
void kernels_to_host(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
void kernels_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
}
void kernels_zero(void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}
void kernels_synchronize(void) {}

/* ---- GEMM --------------------------------------------------------------------------- */

/* DTRAIN_SGEMM=openblas sends every GEMM to OpenBLAS even where our AVX-512 kernel exists:
 * for benchmarks that compare the two and for tracking down a numerical difference. */
#ifdef __AVX512F__
static int g_gemm_openblas;
static pthread_once_t g_gemm_once = PTHREAD_ONCE_INIT;

static void init_gemm_choice(void) {
    const char *v = getenv("DTRAIN_SGEMM");
    g_gemm_openblas = v && strcmp(v, "openblas") == 0;
}

int kc_gemm_is_openblas(void) {
    pthread_once(&g_gemm_once, init_gemm_choice);
    return g_gemm_openblas;
}
#else
int kc_gemm_is_openblas(void) { return 1; }
#endif

void kc_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* BLAS would reject lda = 0; the product is empty anyway */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
#ifdef __AVX512F__
    if (!kc_gemm_is_openblas()) {
        kc_sgemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

size_t kc_packed_a_floats(int M, int K) {
#ifdef __AVX512F__
    if (!kc_gemm_is_openblas()) return kc_sgemm_avx512_packed_a_floats(M, K);
#endif
    return (size_t)M * K;
}

void kc_pack_a(float *dst, int ta, int M, int K, const float *A, int lda) {
#ifdef __AVX512F__
    if (!kc_gemm_is_openblas()) {
        kc_sgemm_avx512_pack_a(dst, ta, M, K, A, lda);
        return;
    }
#endif
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            dst[(size_t)i * K + k] = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
}

void kc_sgemm_packed(int M, int N, int K, const float *packed_a, const float *B, int ldb, int tb,
                     float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef __AVX512F__
    if (!kc_gemm_is_openblas() && K > 0) {
        kc_sgemm_avx512_packed(M, N, K, packed_a, B, ldb, tb, beta, C, ldc);
        return;
    }
#endif
    kc_sgemm(0, tb, M, N, K, 1.0f, packed_a, K, B, ldb, beta, C, ldc);
}

size_t kc_sgemm_cols_floats(const kc_cols *v) {
    return (size_t)v->C * v->K * v->K * v->OH * v->OW;
}

/* col[(c,ky,kx), (y,x)] = pad[c, y+ky, x+kx]: the matrix kc_cols describes */
static void build_cols(float *col, const kc_cols *v) {
    for (int c = 0; c < v->C; c++)
        for (int ky = 0; ky < v->K; ky++)
            for (int kx = 0; kx < v->K; kx++)
                for (int y = 0; y < v->OH; y++, col += v->OW)
                    memcpy(col, v->pad + ((size_t)c * v->PH + y + ky) * v->PW + kx,
                           (size_t)v->OW * sizeof(float));
}

void kc_sgemm_cols(int transposed, int M, const float *A, int lda, const kc_cols *v, float beta,
                   float *C, int ldc, float *col) {
    int CKK = v->C * v->K * v->K, OHW = v->OH * v->OW;
#ifdef __AVX512F__
    if (!kc_gemm_is_openblas()) {
        kc_sgemm_cols_avx512(transposed, M, A, lda, v, beta, C, ldc);
        return;
    }
#endif
    build_cols(col, v);
    if (transposed)
        kc_sgemm(0, 1, M, CKK, OHW, 1.0f, A, lda, col, OHW, beta, C, ldc);
    else
        kc_sgemm(0, 0, M, OHW, CKK, 1.0f, A, lda, col, OHW, beta, C, ldc);
}

/* The part-th piece of C: the longer side is cut in blocks of 16 so that each piece's
 * columns start on a cache line and BLAS keeps its full-width micro-kernels. */
static void sgemm_piece(int ta, int tb, int M, int N, int K, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, const float *bias,
                        int part, int nparts) {
    int m0 = 0, m1 = M, n0 = 0, n1 = N, lo, hi;
    if (M >= N) {
        kc_split((M + 15) / 16, nparts, part, &lo, &hi);
        m0 = lo * 16;
        m1 = hi * 16 < M ? hi * 16 : M;
    } else {
        kc_split((N + 15) / 16, nparts, part, &lo, &hi);
        n0 = lo * 16;
        n1 = hi * 16 < N ? hi * 16 : N;
    }
    if (m0 >= m1 || n0 >= n1) return;
    const float *a = A + (ta ? (size_t)m0 : (size_t)m0 * lda);
    const float *b = B + (tb ? (size_t)n0 * ldb : (size_t)n0);
    float *c = C + (size_t)m0 * ldc + n0;
    if (bias) {
        for (int i = m0; i < m1; i++)
            memcpy(&C[(size_t)i * ldc + n0], bias + n0, (size_t)(n1 - n0) * sizeof(float));
        beta = 1.0f;
    }
    kc_sgemm(ta, tb, m1 - m0, n1 - n0, K, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/* Below this many multiply-adds per thread the fork/join costs more than it saves. */
#define GEMM_GRAIN 65536.0

void kc_sgemm_parallel(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc, const float *bias) {
    int nt = kc_threads_for((double)M * N * K, GEMM_GRAIN);
    (void)nt; /* only read by the pragma; without OpenMP BLAS threads the product itself */
    KC_OMP(omp parallel num_threads(nt))
    sgemm_piece(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, KC_TID(), KC_NT());
}
