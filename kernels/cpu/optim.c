/* optim.c: the optimizer steps and the global gradient norm over the flat arenas, on the
 * CPU. The arithmetic was core/optim.c's, moved here unchanged (the CUDA backend's
 * kernels/cuda/optim.cu does the same per element), so CPU results are bit for bit those of
 * before the move. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* On the CPU the table is the spans themselves, in host memory. */
struct optim_table {
    int n;
    optim_span spans[];
};

optim_table *optim_table_create(const optim_span *spans, int nspans) {
    if (nspans < 0) {
        fprintf(stderr, "optim_table_create: %d tensors\n", nspans);
        abort();
    }
    optim_table *t = malloc(sizeof *t + (size_t)nspans * sizeof(optim_span));
    if (!t) {
        fprintf(stderr, "optim_table_create: out of memory for %d tensors\n", nspans);
        abort();
    }
    t->n = nspans;
    if (nspans) memcpy(t->spans, spans, (size_t)nspans * sizeof(optim_span));
    return t;
}

void optim_table_free(optim_table *t) { free(t); }

/* Elementwise, so splitting a tensor across threads changes no result. Worth it only for
 * big tensors: a parallel region costs a few microseconds. */
#define PAR_MIN 32768

static void adam_tensor(float *restrict p, const float *restrict g, float *restrict mt,
                        float *restrict vt, size_t n, float lr, float b1, float b2, float eps,
                        float wd_l2, float wd_decoupled, float bc1, float bc2) {
    const float step = lr / bc1, inv_sqrt_bc2 = 1.0f / sqrtf(bc2);
    const long nn = (long)n;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (nn >= PAR_MIN)
#endif
    for (long i = 0; i < nn; i++) {
        float gi = g[i] + wd_l2 * p[i];
        float mi = b1 * mt[i] + (1.0f - b1) * gi;
        float vi = b2 * vt[i] + (1.0f - b2) * gi * gi;
        mt[i] = mi;
        vt[i] = vi;
        p[i] -= lr * wd_decoupled * p[i];
        p[i] -= step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

void adam_step(const optim_table *t, float *params, const float *grads, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float wd, int decoupled, float bc1,
               float bc2) {
    for (int i = 0; i < t->n; i++) {
        const optim_span *s = &t->spans[i];
        float w = s->decay ? wd : 0.0f;
        adam_tensor(params + s->offset, grads + s->offset, m + s->offset, v + s->offset, s->numel,
                    lr, beta1, beta2, eps, decoupled ? 0.0f : w, decoupled ? w : 0.0f, bc1, bc2);
    }
}

static void sgd_tensor(float *restrict p, const float *restrict g, float *restrict buf, size_t n,
                       float lr, float mu, float wd) {
    const long nn = (long)n;
#ifdef _OPENMP
#pragma omp parallel for simd schedule(static) if (nn >= PAR_MIN)
#endif
    for (long i = 0; i < nn; i++) {
        float gi = g[i] + wd * p[i];
        float b = mu * buf[i] + gi;
        buf[i] = b;
        p[i] -= lr * (mu > 0.0f ? b : gi);
    }
}

void sgd_step(const optim_table *t, float *params, const float *grads, float *buf, float lr,
              float momentum, float wd) {
    for (int i = 0; i < t->n; i++) {
        const optim_span *s = &t->spans[i];
        sgd_tensor(params + s->offset, grads + s->offset, buf + s->offset, s->numel, lr, momentum,
                   s->decay ? wd : 0.0f);
    }
}

/* Sum of squares in double over 16 independent lanes: vectorizes without reassociating
 * any lane's sum, so the result is the same on every run. */
static double sum_squares(const float *x, size_t n) {
    double lane[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += (double)x[i + j] * (double)x[i + j];
    for (size_t i = n / 16 * 16; i < n; i++) lane[0] += (double)x[i] * (double)x[i];
    double s = 0;
    for (int j = 0; j < 16; j++) s += lane[j];
    return s;
}

double grad_clip_norm(float *x, size_t n, double max_norm) {
    double norm = sqrt(sum_squares(x, n));
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) x[i] *= scale;
    }
    return norm;
}
