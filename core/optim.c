#include "optim.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

int optim_init(optimizer *o, const char *name, const model *m, float beta1, float beta2,
               float eps, float weight_decay, float momentum) {
    memset(o, 0, sizeof *o);
    if (strcmp(name, "sgd") == 0) o->kind = OPT_SGD;
    else if (strcmp(name, "adam") == 0) o->kind = OPT_ADAM;
    else if (strcmp(name, "adamw") == 0) o->kind = OPT_ADAMW;
    else return -1;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->momentum = momentum;
    o->m = kernels_alloc(m->nfloats);
    if (o->kind != OPT_SGD) o->v = kernels_alloc(m->nfloats);
    return 0;
}

void optim_free(optimizer *o) {
    kernels_free(o->m);
    kernels_free(o->v);
    o->m = o->v = NULL;
}

/* Elementwise, so splitting a tensor across threads changes no result. Worth it only for
 * big tensors: a parallel region costs a few microseconds. */
#define PAR_MIN 32768

static void adam_tensor(const optimizer *o, float *restrict p, const float *restrict g,
                        float *restrict mt, float *restrict vt, size_t n, float lr, float wd_l2,
                        float wd_decoupled, float bc1, float bc2) {
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
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

static void sgd_tensor(const optimizer *o, float *restrict p, const float *restrict g,
                       float *restrict buf, size_t n, float lr, float wd) {
    const float mu = o->momentum;
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

void optim_step(optimizer *o, model *m, float lr) {
    o->t++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->t);
    float bc2 = 1.0f - powf(o->beta2, (float)o->t);
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_info *t = &m->tensors[i];
        float wd = t->decay ? o->weight_decay : 0.0f;
        float *p = m->params + t->offset, *g = m->grads + t->offset;
        float *mt = o->m + t->offset;
        switch (o->kind) {
        case OPT_SGD: sgd_tensor(o, p, g, mt, t->numel, lr, wd); break;
        case OPT_ADAM:
            adam_tensor(o, p, g, mt, o->v + t->offset, t->numel, lr, wd, 0.0f, bc1, bc2);
            break;
        case OPT_ADAMW:
            adam_tensor(o, p, g, mt, o->v + t->offset, t->numel, lr, 0.0f, wd, bc1, bc2);
            break;
        }
    }
}

/* Sum of squares in double over 16 independent lanes: vectorizes without reassociating
 * any lane's sum, so the result is the same on every run. The arena is padded to a
 * multiple of 16 floats. */
static double sum_squares(const float *x, size_t n) {
    double lane[16] = {0};
    for (size_t i = 0; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) lane[j] += (double)x[i + j] * (double)x[i + j];
    for (size_t i = n / 16 * 16; i < n; i++) lane[0] += (double)x[i] * (double)x[i];
    double s = 0;
    for (int j = 0; j < 16; j++) s += lane[j];
    return s;
}

double clip_grad_norm(model *m, double max_norm) {
    double norm = sqrt(sum_squares(m->grads, m->nfloats));
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < m->nfloats; i++) m->grads[i] *= scale;
    }
    return norm;
}

double lr_at(const lr_schedule *s, long step) {
    if (step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == LR_CONSTANT) return s->lr;
    if (step >= s->total) return s->min_lr;
    double ratio = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return s->min_lr + coeff * (s->lr - s->min_lr);
}
