/* frechet.c: tr((S1 S2)^(1/2)) through symmetric eigendecompositions (LAPACK dsyev).
 *
 * S1 S2 is not symmetric, but it is similar to the symmetric PSD M = S1^(1/2) S2 S1^(1/2)
 * (conjugate by S1^(1/2)), so both have the same eigenvalues and tr((S1 S2)^(1/2)) =
 * sum_i sqrt(lambda_i(M)). S1^(1/2) = V diag(sqrt(max(l, 0))) V^T from S1's own
 * decomposition; eigenvalues that rounding pushes below zero are clamped. */
#include "frechet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* OpenBLAS ships LAPACK; its header is not on every system, so declare the one routine. */
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info);

void gauss_fit(const float *feat, int n, int d, double *mean, double *cov) {
    memset(mean, 0, (size_t)d * sizeof *mean);
    memset(cov, 0, (size_t)d * d * sizeof *cov);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++) mean[a] += feat[(size_t)i * d + a];
    for (int a = 0; a < d; a++) mean[a] /= n;
    double *c = xmalloc((size_t)d * sizeof *c);
    for (int i = 0; i < n; i++) {
        for (int a = 0; a < d; a++) c[a] = feat[(size_t)i * d + a] - mean[a];
        for (int a = 0; a < d; a++)
            for (int b = 0; b <= a; b++) cov[(size_t)a * d + b] += c[a] * c[b];
    }
    for (int a = 0; a < d; a++)
        for (int b = 0; b <= a; b++) {
            cov[(size_t)a * d + b] /= n - 1;
            cov[(size_t)b * d + a] = cov[(size_t)a * d + b];
        }
    free(c);
}

/* Eigenvalues w[d] and (with vectors) eigenvectors of the symmetric a[d*d], in place: column j
 * of the column-major result (a[i + j d]) is the j-th eigenvector. 0 or LAPACK's info. */
static int eigh(double *a, double *w, int d, int vectors) {
    int lwork = 66 * d, info = 0;
    double *work = xmalloc((size_t)lwork * sizeof *work);
    dsyev_(vectors ? "V" : "N", "U", &d, a, &d, w, work, &lwork, &info);
    free(work);
    return info;
}

/* out = A B for d x d row-major matrices */
static void matmul(double *out, const double *A, const double *B, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += A[(size_t)i * d + k] * B[(size_t)k * d + j];
            out[(size_t)i * d + j] = s;
        }
}

double frechet_distance(const double *m1, const double *S1, const double *m2, const double *S2, int d) {
    size_t dd = (size_t)d * d;
    double *V = xmalloc(dd * sizeof *V), *w = xmalloc((size_t)d * sizeof *w);
    double *R = xmalloc(dd * sizeof *R), *T = xmalloc(dd * sizeof *T), *M = xmalloc(dd * sizeof *M);
    double result = -1;
    memcpy(V, S1, dd * sizeof *V); /* symmetric: row- and column-major agree */
    if (eigh(V, w, d, 1) == 0) {
        /* R = S1^(1/2) = sum_j sqrt(w_j) v_j v_j^T */
        for (int i = 0; i < d; i++)
            for (int k = 0; k < d; k++) {
                double s = 0;
                for (int j = 0; j < d; j++)
                    s += V[i + (size_t)j * d] * sqrt(fmax(w[j], 0.0)) * V[k + (size_t)j * d];
                R[(size_t)i * d + k] = s;
            }
        matmul(T, R, S2, d);
        matmul(M, T, R, d);
        for (int i = 0; i < d; i++) /* symmetrise away rounding before dsyev */
            for (int k = 0; k < i; k++)
                M[(size_t)i * d + k] = M[(size_t)k * d + i] = 0.5 * (M[(size_t)i * d + k] + M[(size_t)k * d + i]);
        if (eigh(M, w, d, 0) == 0) {
            double tr_sqrt = 0, tr1 = 0, tr2 = 0, dm = 0;
            for (int i = 0; i < d; i++) {
                tr_sqrt += sqrt(fmax(w[i], 0.0));
                tr1 += S1[(size_t)i * d + i];
                tr2 += S2[(size_t)i * d + i];
                dm += (m1[i] - m2[i]) * (m1[i] - m2[i]);
            }
            result = dm + tr1 + tr2 - 2.0 * tr_sqrt;
        }
    }
    free(V), free(w), free(R), free(T), free(M);
    return result;
}
