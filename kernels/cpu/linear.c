/* linear.c: fully connected layer, out = inp . w^T + b, as GEMMs (kc_sgemm_parallel). */
#include "cpu.h"
#include "kernels.h"

#define DB_GRAIN 32768.0 /* dout floats per thread for the bias gradient */

/* out[N,OC] = inp[N,C] . w[OC,C]^T + b[OC] */
void linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                    int OC) {
    /* the bias is written into out first so the GEMM adds onto it (beta = 1): one pass
     * over out instead of a second sweep after the product */
    kc_sgemm_parallel(0, 1, N, OC, C, inp, C, w, C, 0.0f, out, OC, b);
}

/* db[o0:o1] += sum_n dout[n, o0:o1], rows in order; the inner loop runs along a
 * contiguous row and vectorizes. */
static void bias_grad_cols(float *restrict db, const float *restrict dout, int N, int OC, int o0,
                           int o1) {
    for (int n = 0; n < N; n++) {
        const float *row = dout + (size_t)n * OC;
        for (int o = o0; o < o1; o++) db[o] += row[o];
    }
}

/* The threads cut each product along its output, never along the summed dimension, and
 * db along OC: no partial sums to combine, and the pieces depend only on the thread count.
 * (BLAS may still round a piece's edge differently, so results are reproducible for a
 * given thread count, not across counts.) */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC) {
    /* dinp[N,C] += dout[N,OC] . w[OC,C] */
    if (dinp) kc_sgemm_parallel(0, 0, N, C, OC, dout, OC, w, C, 1.0f, dinp, C, NULL);
    /* dw[OC,C] += dout[N,OC]^T . inp[N,C] */
    if (dw) kc_sgemm_parallel(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dw, C, NULL);
    if (db) {
        int nt = kc_threads_for((double)N * OC, DB_GRAIN);
        (void)nt; /* only read by the pragma */
        KC_OMP(omp parallel num_threads(nt))
        {
            int o0, o1;
            kc_split(OC, KC_NT(), KC_TID(), &o0, &o1);
            bias_grad_cols(db, dout, N, OC, o0, o1);
        }
    }
}
