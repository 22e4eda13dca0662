/* cblas_ref.c: a plain reference SGEMM (row- and column-major, transposes, leading
 * dimensions) for gpu_check builds without OpenBLAS. Sums in double, so it is at least as
 * accurate as the library it stands in for; the op tests' shapes are small. */
#include "cblas.h"

#include <stddef.h>

/* element (r, c) of op(X) for a row-major X */
static float at(const float *X, int ld, int trans, int r, int c) {
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                 int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc) {
    if (order == CblasColMajor) { /* C^T = op(B)^T op(A)^T, all read row-major */
        cblas_sgemm(CblasRowMajor, tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
        return;
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int l = 0; l < K; l++)
                s += (double)at(A, lda, ta == CblasTrans, i, l) * at(B, ldb, tb == CblasTrans, l, j);
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0.0f ? (float)(alpha * s) : (float)(alpha * s + (double)beta * *c);
        }
}

/* one thread: there is no library thread pool to size */
int openblas_get_num_threads(void) { return 1; }
void openblas_set_num_threads(int n) { (void)n; }
