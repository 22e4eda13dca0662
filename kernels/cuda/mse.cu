/* mse.cu: mean squared error, as kernels/cpu/mse.c: the sum in double, in a fixed order. */
#include "common.cuh"

/* Per-block partial sums of (p - t)^2 in double; the grid size depends on n only, so the
 * partials and their ordered sum (cu_sum_to_host) are the same on every run. */
static __global__ void sq_err_k(double *part, const float *p, const float *t, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) {
        double d = (double)p[i] - (double)t[i];
        s += d * d;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

float mse_forward(const float *pred, const float *target, size_t n) {
    if (n == 0) return 0.0f;
    unsigned nb = kc_blocks(n);
    double *part = (double *)cu_ws(2 * (size_t)nb); /* nb doubles */
    LAUNCH(sq_err_k, nb, KC_BLOCK, part, pred, target, n);
    return (float)(cu_sum_to_host(part, (int)nb) / (double)n);
}

static __global__ void mse_bwd_k(float *dpred, const float *p, const float *t, float coef,
                                 size_t n) {
    GRID_STRIDE(i, n) dpred[i] += coef * (p[i] - t[i]);
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!dpred || n == 0) return;
    float coef = (float)(2.0 * (double)scale / (double)n);
    LAUNCH(mse_bwd_k, kc_blocks(n), KC_BLOCK, dpred, pred, target, coef, n);
}
