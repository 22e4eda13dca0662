/* layernorm.c: per-row normalization, out = (x - mean) * rstd * weight + bias.
 *
 * With xhat = (x - mean) rstd and g = dout * weight, the gradient of one row is
 *   dx = rstd (g - mean(g) - xhat mean(g xhat))
 * (the two means are the derivatives through mean and through rstd). Rows are independent,
 * so threads take whole rows; dweight and dbias sum over rows, so there the threads take
 * columns instead and every element is summed in row order at any thread count. */
#include <math.h>

#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define LN_EPS 1e-5f
#define LN_GRAIN 16384.0 /* floats per thread */

/* one row x[C]: mean and rstd, two-pass (the variance of centred values does not cancel
 * catastrophically when |mean| >> std, as E[x^2] - mean^2 would) */
static void row_stats(const float *restrict x, int C, float *mean, float *rstd) {
    float m = vm_sum(x, C) / (float)C;
    float acc[VM_LANES] = {0}, tail = 0.0f; /* tail apart: see vm_sum */
    int i = 0;
    for (; i + VM_LANES <= C; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) {
            float d = x[i + k] - m;
            acc[k] = fmaf(d, d, acc[k]);
        }
    for (; i < C; i++) tail = fmaf(x[i] - m, x[i] - m, tail);
    float var = (vm_fold_sum(acc) + tail) / (float)C;
    *mean = m;
    *rstd = 1.0f / sqrtf(var + LN_EPS);
}

/* rows [lo, hi) of out[N,C], mean[N], rstd[N] */
static void norm_rows(float *restrict out, float *restrict mean, float *restrict rstd,
                      const float *restrict inp, const float *restrict w,
                      const float *restrict b, int C, int lo, int hi) {
    for (int n = lo; n < hi; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m, r;
        row_stats(x, C, &m, &r);
        mean[n] = m;
        rstd[n] = r;
        if (b)
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
        else
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * w[c];
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
    int nt = kc_threads_for((double)N * C, LN_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(N, KC_NT(), KC_TID(), &lo, &hi);
        norm_rows(out, mean, rstd, inp, weight, bias, C, lo, hi);
    }
}

/* dinp rows [lo, hi) += the row gradient above */
static void dinp_rows(float *restrict dinp, const float *restrict dout,
                      const float *restrict inp, const float *restrict w,
                      const float *restrict mean, const float *restrict rstd, int C, int lo,
                      int hi) {
    for (int n = lo; n < hi; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float *d = dinp + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        /* the two row means, over g = dout * w and g * xhat, in 16 lanes */
        float a1[VM_LANES] = {0}, a2[VM_LANES] = {0}, t1 = 0.0f, t2 = 0.0f;
        int i = 0;
        for (; i + VM_LANES <= C; i += VM_LANES)
            for (int k = 0; k < VM_LANES; k++) {
                float gw = g[i + k] * w[i + k];
                a1[k] += gw;
                a2[k] = fmaf(gw, (x[i + k] - m) * r, a2[k]);
            }
        for (; i < C; i++) {
            float gw = g[i] * w[i];
            t1 += gw;
            t2 = fmaf(gw, (x[i] - m) * r, t2);
        }
        float mg = (vm_fold_sum(a1) + t1) / (float)C, mgx = (vm_fold_sum(a2) + t2) / (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            d[c] += r * (g[c] * w[c] - mg - xhat * mgx);
        }
    }
}

/* dweight[c0:c1] += sum_n dout * xhat, dbias[c0:c1] += sum_n dout, rows in order */
static void param_cols(float *restrict dw, float *restrict db, const float *restrict dout,
                       const float *restrict inp, const float *restrict mean,
                       const float *restrict rstd, int N, int C, int c0, int c1) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        if (dw)
            for (int c = c0; c < c1; c++) dw[c] += g[c] * ((x[c] - m) * r);
        if (db)
            for (int c = c0; c < c1; c++) db[c] += g[c];
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
    int passes = (dinp != NULL) + (dweight || dbias);
    if (!passes) return;
    int nt = kc_threads_for((double)N * C * passes, LN_GRAIN);
    (void)nt; /* only read by the pragma */
    /* the two passes write disjoint buffers, so neither waits for the other */
    KC_OMP(omp parallel num_threads(nt))
    {
        if (dinp) {
            int lo, hi;
            kc_split(N, KC_NT(), KC_TID(), &lo, &hi);
            dinp_rows(dinp, dout, inp, weight, mean, rstd, C, lo, hi);
        }
        if (dweight || dbias) {
            size_t c0, c1;
            kc_split16((size_t)C, KC_NT(), KC_TID(), &c0, &c1);
            param_cols(dweight, dbias, dout, inp, mean, rstd, N, C, (int)c0, (int)c1);
        }
    }
}
