/* softmax_xent.cu: softmax fused with cross-entropy, as kernels/cpu/softmax_xent.c: one
 * block per row, the normaliser and the mean loss summed in double in a fixed order. */
#include <math.h>

#include "common.cuh"

/* probs = softmax(x) (max subtracted first, sum in double); the loss from the log-sum-exp,
 * which stays finite for a confidently wrong row where log(probs[t]) would not */
static __global__ void xent_fwd_k(float *probs, float *losses, const float *logits,
                                  const int32_t *targets, int V, int *err) {
    int row = blockIdx.x, t = targets[row];
    const float *x = logits + (size_t)row * V;
    float *p = probs + (size_t)row * V;
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = x[v] > m ? x[v] : m;
    m = block_max(m);
    double s = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float e = expf(x[v] - m);
        p[v] = e;
        s += e;
    }
    s = block_sum(s);
    float inv = (float)(1.0 / s);
    for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] *= inv;
    if (threadIdx.x != 0) return;
    if (t < 0 || t >= V) {
        losses[row] = __int_as_float(0x7fc00000); /* NaN */
        atomicOr(err, CU_ERR_TARGET);
        return;
    }
    losses[row] = (float)(log(s) - ((double)x[t] - (double)m));
}

/* per-block partial sums of x[n] in double, for an ordered total (cu_sum_to_host) */
static __global__ void sum_f64_k(double *part, const float *x, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

float softmax_xent_forward(float *probs, float *losses, const float *logits,
                           const int32_t *targets, int N, int V) {
    if (N <= 0) return 0.0f;
    LAUNCH(xent_fwd_k, (unsigned)N, KC_BLOCK, probs, losses, logits, targets, V, cu_err_flag());
    unsigned nb = kc_blocks((size_t)N);
    double *part = (double *)cu_ws(2 * (size_t)nb);
    LAUNCH(sum_f64_k, nb, KC_BLOCK, part, losses, (size_t)N);
    return (float)(cu_sum_to_host(part, (int)nb) / N);
}

/* dlogits += scale (probs - onehot); the target entry in one rounding, as on the CPU. A
 * target outside [0, V) matches no entry (and was reported by the forward pass). */
static __global__ void xent_bwd_k(float *dlogits, const float *probs, const int32_t *targets,
                                  size_t n, int V, float scale) {
    GRID_STRIDE(i, n) {
        int v = (int)(i % V), t = targets[i / V];
        float p = probs[i];
        dlogits[i] += v == t ? scale * (p - 1.0f) : scale * p;
    }
}

void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int N,
                           int V, float scale) {
    size_t n = (size_t)N * V;
    if (dlogits && n) LAUNCH(xent_bwd_k, kc_blocks(n), KC_BLOCK, dlogits, probs, targets, n, V,
                             scale);
}
