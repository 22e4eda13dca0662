/* cblas.h: the part of the CBLAS interface kernels/cpu uses, for gpu_check builds on
 * machines without OpenBLAS (bench/gpu_check/cblas_ref.c implements it). */
#ifndef DTRAIN_GPU_CHECK_CBLAS_H
#define DTRAIN_GPU_CHECK_CBLAS_H

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112 };

void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                 int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

#endif
