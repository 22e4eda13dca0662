/* emu_blas.cc: cuBLAS SGEMM, column-major as the real one: op(A) is m x k, op(B) k x n,
 * C m x n, each stored column after column with its leading dimension. A reference loop
 * with double sums (so it is not bit-identical to cuBLAS, only within fp32 rounding).
 * TF32 math mode is accepted and not emulated: products stay fp32.
 *
 * Checks before enqueueing, as the real library does: sizes >= 0, leading dimensions at
 * least the stored rows (CUBLAS_STATUS_INVALID_VALUE otherwise), and, which a GPU only
 * shows as a fault, every matrix inside one live device allocation. */
#include <stdio.h>

#include <new>

#include "emu_internal.h"

struct emu_blas {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

typedef std::lock_guard<std::recursive_mutex> guard;

extern "C" cublasStatus_t cublasCreate(cublasHandle_t *h) {
    if (!h) return CUBLAS_STATUS_INVALID_VALUE;
    *h = new (std::nothrow) emu_blas;
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasDestroy(cublasHandle_t h) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED (emulated)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED (emulated)";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE (emulated)";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (emulated)";
    }
    return "unknown cuBLAS status (emulated)";
}

namespace {
struct gemm_args {
    cublasOperation_t ta, tb;
    int m, n, k;
    float alpha, beta; /* host pointer mode: read at the call */
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    long long sA, sB, sC;
    int batch;
};

/* column-major element (r, c) of op(X) */
float at(const float *X, int ld, cublasOperation_t t, int r, int c) {
    return t == CUBLAS_OP_N ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* C = alpha op(A) op(B) + beta C; beta = 0 ignores C (NaN in it does not propagate) */
void gemm_one(const gemm_args &g, const float *A, const float *B, float *C) {
    for (int j = 0; j < g.n; j++)
        for (int i = 0; i < g.m; i++) {
            double s = 0.0;
            for (int l = 0; l < g.k; l++) s += (double)at(A, g.lda, g.ta, i, l) * at(B, g.ldb, g.tb, l, j);
            float *c = &C[(size_t)j * g.ldc + i];
            *c = g.beta == 0.0f ? (float)(g.alpha * s) : (float)(g.alpha * s + g.beta * (double)*c);
        }
}

struct gemm_op : emu_op {
    gemm_args g;
    bool step() override {
        emu_access open;
        for (int b = 0; b < g.batch; b++)
            gemm_one(g, g.A + b * g.sA, g.B + b * g.sB, g.C + b * g.sC);
        return true;
    }
};

bool ld_ok(int ld, int rows) { return ld >= (rows > 1 ? rows : 1); }

/* bytes from a stored matrix's first element to past its last: rows x cols, ld apart */
size_t extent(int rows, int cols, int ld) {
    if (rows <= 0 || cols <= 0) return 0;
    return ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * sizeof(float);
}

bool matrix_on_device(const char *call, const char *name, const float *X, int rows, int cols,
                      int ld, long long stride, int batch) {
    for (int b = 0; b < batch; b++) {
        size_t bytes = extent(rows, cols, ld);
        if (!bytes) return true;
        const float *p = X + b * stride;
        if (!emu_device_range(p, bytes)) {
            emu_warn("%s: %s of batch %d (%p, %zu bytes) is not inside one live device "
                     "allocation%s",
                     call, name, b, (const void *)p, bytes,
                     emu_in_region(p) ? "" : " (a host pointer)");
            return false;
        }
    }
    return true;
}

cublasStatus_t enqueue_gemm(const char *call, cublasHandle_t h, const gemm_args &g) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    int a_rows = g.ta == CUBLAS_OP_N ? g.m : g.k, a_cols = g.ta == CUBLAS_OP_N ? g.k : g.m;
    int b_rows = g.tb == CUBLAS_OP_N ? g.k : g.n, b_cols = g.tb == CUBLAS_OP_N ? g.n : g.k;
    if (!ld_ok(g.lda, a_rows) || !ld_ok(g.ldb, b_rows) || !ld_ok(g.ldc, g.m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
    guard lk(emu_lock());
    if ((g.k > 0 && !matrix_on_device(call, "A", g.A, a_rows, a_cols, g.lda, g.sA, g.batch)) ||
        (g.k > 0 && !matrix_on_device(call, "B", g.B, b_rows, b_cols, g.ldb, g.sB, g.batch)) ||
        !matrix_on_device(call, "C", g.C, g.m, g.n, g.ldc, g.sC, g.batch))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    gemm_op *op = new (std::nothrow) gemm_op;
    if (!op) return CUBLAS_STATUS_ALLOC_FAILED;
    op->g = g;
    emu_enqueue(h->stream, op);
    return CUBLAS_STATUS_SUCCESS;
}
} // namespace

extern "C" cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta,
                                      cublasOperation_t tb, int m, int n, int k,
                                      const float *alpha, const float *A, int lda,
                                      const float *B, int ldb, const float *beta, float *C,
                                      int ldc) {
    if (!alpha || !beta || ta == CUBLAS_OP_C || tb == CUBLAS_OP_C) return CUBLAS_STATUS_INVALID_VALUE;
    gemm_args g{ta, tb, m, n, k, *alpha, *beta, A, B, C, lda, ldb, ldc, 0, 0, 0, 1};
    return enqueue_gemm("cublasSgemm", h, g);
}

extern "C" cublasStatus_t cublasSgemmStridedBatched(
    cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
    const float *alpha, const float *A, int lda, long long sA, const float *B, int ldb,
    long long sB, const float *beta, float *C, int ldc, long long sC, int batch) {
    if (!alpha || !beta || ta == CUBLAS_OP_C || tb == CUBLAS_OP_C) return CUBLAS_STATUS_INVALID_VALUE;
    gemm_args g{ta, tb, m, n, k, *alpha, *beta, A, B, C, lda, ldb, ldc, sA, sB, sC, batch};
    return enqueue_gemm("cublasSgemmStridedBatched", h, g);
}
