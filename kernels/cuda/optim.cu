/* optim.cu: the optimizer step and the global gradient norm over the flat buffers, on the
 * device, with the arithmetic of core/optim.c. Elementwise, so the result does not depend
 * on how the work is cut; the norm is an ordered sum (per-block partials, then one block). */
#include <math.h>

#include "common.cuh"

struct optim_table {
    optim_span *spans; /* device copy of the table */
    int n;
    size_t max_numel;
};

/* Grids are 2-D: y picks the span, x strides over its elements; 65535 spans at most. */
#define MAX_SPANS 65535

optim_table *optim_table_create(const optim_span *spans, int nspans) {
    if (nspans < 0 || nspans > MAX_SPANS) {
        fprintf(stderr, "dtrain: cuda: optim_table_create: %d tensors (at most %d)\n", nspans,
                MAX_SPANS);
        abort();
    }
    optim_table *o = (optim_table *)calloc(1, sizeof *o);
    if (!o) {
        fprintf(stderr, "dtrain: cuda: out of memory for the optimizer table\n");
        abort();
    }
    o->n = nspans;
    for (int i = 0; i < nspans; i++)
        if (spans[i].numel > o->max_numel) o->max_numel = spans[i].numel;
    size_t bytes = (size_t)nspans * sizeof(optim_span);
    o->spans = (optim_span *)cuda_kernels_alloc_bytes(bytes);
    kernels_to_device(o->spans, spans, bytes);
    return o;
}

void optim_table_free(optim_table *o) {
    if (!o) return;
    cuda_kernels_free_bytes(o->spans);
    free(o);
}

static dim3 span_grid(const optim_table *o) {
    unsigned x = kc_blocks(o->max_numel);
    return dim3(x > 1024 ? 1024 : x, (unsigned)o->n);
}

/* the elements of span blockIdx.y, strided over the x blocks */
#define SPAN_STRIDE(i, sp)                                                                \
    for (size_t i = (sp).offset + (size_t)blockIdx.x * blockDim.x + threadIdx.x;          \
         i < (sp).offset + (sp).numel; i += (size_t)gridDim.x * blockDim.x)

typedef struct {
    float lr, b1, b2, eps, wd, step, inv_sqrt_bc2;
    int decoupled;
} adam_args;

static __global__ void adam_k(const optim_span *spans, float *p, const float *g, float *m,
                              float *v, adam_args a) {
    optim_span sp = spans[blockIdx.y];
    float wd = sp.decay ? a.wd : 0.0f;
    float wd_l2 = a.decoupled ? 0.0f : wd, wd_dec = a.decoupled ? wd : 0.0f;
    SPAN_STRIDE(i, sp) {
        float gi = g[i] + wd_l2 * p[i];
        float mi = a.b1 * m[i] + (1.0f - a.b1) * gi;
        float vi = a.b2 * v[i] + (1.0f - a.b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i];
        pi -= a.lr * wd_dec * pi;
        pi -= a.step * mi / (sqrtf(vi) * a.inv_sqrt_bc2 + a.eps);
        p[i] = pi;
    }
}

void adam_step(const optim_table *o, float *params, const float *grads, float *m, float *v,
               float lr, float beta1, float beta2, float eps, float wd, int decoupled, float bc1,
               float bc2) {
    if (!o->n || !o->max_numel) return;
    adam_args a = {lr, beta1, beta2, eps, wd, lr / bc1, 1.0f / sqrtf(bc2), decoupled != 0};
    LAUNCH(adam_k, span_grid(o), KC_BLOCK, o->spans, params, grads, m, v, a);
}

static __global__ void sgd_k(const optim_span *spans, float *p, const float *g, float *buf,
                             float lr, float mu, float wd_all) {
    optim_span sp = spans[blockIdx.y];
    float wd = sp.decay ? wd_all : 0.0f;
    SPAN_STRIDE(i, sp) {
        float gi = g[i] + wd * p[i];
        float b = mu * buf[i] + gi;
        buf[i] = b;
        p[i] -= lr * (mu > 0.0f ? b : gi);
    }
}

void sgd_step(const optim_table *o, float *params, const float *grads, float *buf, float lr,
              float momentum, float wd) {
    if (!o->n || !o->max_numel) return;
    LAUNCH(sgd_k, span_grid(o), KC_BLOCK, o->spans, params, grads, buf, lr, momentum, wd);
}

/* ---- global norm and clipping ----------------------------------------------------------- */

static __global__ void sumsq_k(double *part, const float *x, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += (double)x[i] * (double)x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* x *= max_norm / (norm + 1e-6) when the norm exceeds max_norm; the norm is read on the
 * device, so the step need not wait for the host */
static __global__ void clip_k(float *x, size_t n, const double *sumsq, double max_norm) {
    double norm = sqrt(*sumsq);
    if (!(norm > max_norm)) return;
    float scale = (float)(max_norm / (norm + 1e-6));
    GRID_STRIDE(i, n) x[i] *= scale;
}

double grad_clip_norm(float *x, size_t n, double max_norm) {
    if (n == 0) return 0.0;
    unsigned nb = kc_blocks(n);
    double *part = (double *)cu_ws(2 * (size_t)nb);
    LAUNCH(sumsq_k, nb, KC_BLOCK, part, x, n);
    const double *sumsq = cu_sum_on_device(part, (int)nb);
    if (max_norm > 0) LAUNCH(clip_k, nb, KC_BLOCK, x, n, sumsq, max_norm);
    return sqrt(cu_fetch_sum());
}
