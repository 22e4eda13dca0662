/* softmax_xent.c: row-wise softmax fused with the cross-entropy loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"
#include "kernels.h"

#define XENT_GRAIN 16384.0 /* logits per thread */

/* One row: probs[V] and the loss -log probs[t]. The max is subtracted before expf so no
 * term overflows; the loss comes from the log-sum-exp rather than log(probs[t]), which
 * would underflow to -inf for a confidently wrong row. */
static double xent_row(float *restrict probs, const float *restrict x, int t, int V) {
    float m = x[0];
    for (int v = 1; v < V; v++) m = x[v] > m ? x[v] : m;
    double sum = 0.0; /* long rows (vocabularies) would lose digits in a float sum */
    for (int v = 0; v < V; v++) {
        probs[v] = expf(x[v] - m);
        sum += probs[v];
    }
    float inv = (float)(1.0 / sum);
    for (int v = 0; v < V; v++) probs[v] *= inv;
    return log(sum) - ((double)x[t] - (double)m);
}

static void check_targets(const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++)
        if (targets[n] < 0 || targets[n] >= V) {
            fprintf(stderr, "softmax_xent: targets[%d] = %d outside [0, %d)\n", n, (int)targets[n],
                    V);
            abort();
        }
}

/* probs[N,V], losses[N] from logits[N,V], targets[N]; returns the mean loss */
float softmax_xent_forward(float *probs, float *losses, const float *logits, const int32_t *targets,
                           int N, int V) {
    check_targets(targets, N, V);
    int nt = kc_threads_for((double)N * V, XENT_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(N, KC_NT(), KC_TID(), &lo, &hi);
        for (int n = lo; n < hi; n++) {
            size_t off = (size_t)n * V;
            losses[n] = (float)xent_row(probs + off, logits + off, targets[n], V);
        }
    }
    /* summed once, in row order, so the mean does not depend on the thread count */
    double total = 0.0;
    for (int n = 0; n < N; n++) total += losses[n];
    return N > 0 ? (float)(total / N) : 0.0f;
}

/* dlogits[N,V] += scale * (probs - onehot(targets)) */
void softmax_xent_backward(float *dlogits, const float *probs, const int32_t *targets, int N, int V,
                           float scale) {
    check_targets(targets, N, V);
    int nt = kc_threads_for((double)N * V, XENT_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(N, KC_NT(), KC_TID(), &lo, &hi);
        for (int n = lo; n < hi; n++) {
            float *restrict d = dlogits + (size_t)n * V;
            const float *restrict p = probs + (size_t)n * V;
            int t = targets[n];
            float d_t = d[t];
            for (int v = 0; v < V; v++) d[v] += scale * p[v];
            /* the target entry as scale * (p - 1) in one rounding, not two */
            d[t] = d_t + scale * (p[t] - 1.0f);
        }
    }
}
