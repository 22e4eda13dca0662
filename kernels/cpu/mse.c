/* mse.c: mean squared error, the diffusion loss (predicted against true noise).
 *
 * The forward sum is split into at most MSE_MAX_BLOCKS blocks whose size depends on n
 * only; each block is summed in double (8 lanes, fixed fold) and the block sums are added
 * in block order after the parallel region. So the result is the same at any thread count,
 * and double accumulation keeps it exact to float precision for any n we train with. */
#include <stddef.h>

#include "cpu.h"
#include "kernels.h"

#define MSE_MAX_BLOCKS 256
#define MSE_MIN_BLOCK  4096    /* floats: below this a block is not worth a partial */
#define MSE_GRAIN      65536.0 /* floats per thread */
#define MSE_LANES      8       /* doubles in one AVX-512 register */

/* sum of (p - t)^2 over [lo, hi), in double. The lane loop counts whole chunks: written
 * as `i + MSE_LANES <= hi` GCC 12 leaves it scalar. */
static double sq_err_sum(const float *restrict p, const float *restrict t, size_t lo,
                         size_t hi) {
    double acc[MSE_LANES] = {0}, tail = 0.0;
    size_t chunks = (hi - lo) / MSE_LANES;
    const float *pc = p + lo, *tc = t + lo;
    for (size_t j = 0; j < chunks; j++)
        for (int k = 0; k < MSE_LANES; k++) {
            double d = (double)pc[j * MSE_LANES + k] - (double)tc[j * MSE_LANES + k];
            acc[k] += d * d;
        }
    for (size_t i = lo + chunks * MSE_LANES; i < hi; i++) {
        double d = (double)p[i] - (double)t[i];
        tail += d * d;
    }
    double a4[4], a2[2];
    for (int k = 0; k < 4; k++) a4[k] = acc[k] + acc[k + 4];
    for (int k = 0; k < 2; k++) a2[k] = a4[k] + a4[k + 2];
    return (a2[0] + a2[1]) + tail;
}

float mse_forward(const float *pred, const float *target, size_t n) {
    if (n == 0) return 0.0f; /* no terms: report no error rather than 0/0 */
    /* blocks: whole multiples of 16 floats, at least MSE_MIN_BLOCK, at most MAX_BLOCKS */
    size_t bs = (n + MSE_MAX_BLOCKS - 1) / MSE_MAX_BLOCKS;
    bs = bs < MSE_MIN_BLOCK ? MSE_MIN_BLOCK : kc_round16(bs);
    int nblocks = (int)((n + bs - 1) / bs);
    double part[MSE_MAX_BLOCKS];
    int nt = kc_threads_for((double)n, MSE_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(nblocks, KC_NT(), KC_TID(), &lo, &hi);
        for (int k = lo; k < hi; k++) {
            size_t b0 = (size_t)k * bs, b1 = b0 + bs < n ? b0 + bs : n;
            part[k] = sq_err_sum(pred, target, b0, b1);
        }
    }
    double sum = 0.0;
    for (int k = 0; k < nblocks; k++) sum += part[k];
    return (float)(sum / (double)n);
}

/* dpred[lo:hi] += coef * (pred - target) */
static void mse_grad_range(float *restrict dpred, const float *restrict pred,
                           const float *restrict target, float coef, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) dpred[i] += coef * (pred[i] - target[i]);
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!dpred || n == 0) return;
    float coef = (float)(2.0 * (double)scale / (double)n);
    int nt = kc_threads_for((double)n, MSE_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        mse_grad_range(dpred, pred, target, coef, lo, hi);
    }
}
