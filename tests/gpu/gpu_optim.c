/* gpu_optim.c: the device optimizer step and gradient clipping against core/optim.c.
 *
 * A model of a few tensors (weight decay on some, alignment padding between them) takes
 * ten steps of each optimizer on both backends from the same start, with the same fresh
 * random gradients every step; parameters and optimizer state are then compared (see
 * gpu_check.h). The padding must stay untouched. Then the global norm and the clipped
 * gradients. The reference is core/optim.c over the CPU backend (kernels/cpu/optim.c).
 * Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda/kernels_cuda.h"
#include "gpu_check.h"
#include "optim.h"
#include "params.h"

#define STEPS 10

static void build(model *m) {
    memset(m, 0, sizeof *m);
    model_add(m, "w1", 2, (int[]){37, 29}, 1);
    model_add(m, "b1", 1, (int[]){29}, 0);
    model_add(m, "w2", 2, (int[]){300, 7}, 1);
    model_add(m, "ln", 1, (int[]){5}, 0);
    model_alloc(m);
}

static optim_table *table(const model *m) {
    optim_span spans[16];
    for (int i = 0; i < m->ntensors; i++)
        spans[i] = (optim_span){m->tensors[i].offset, m->tensors[i].numel, m->tensors[i].decay};
    return cuda_optim_table_create(spans, m->ntensors);
}

/* a gk_buf view of a host arena, with a device copy */
static gk_buf mirror(const float *h, size_t n) {
    gk_buf b = gk_rand(n, 1, 0, 1);
    memcpy(b.h, h, n * sizeof(float));
    cuda_kernels_to_device(b.d, b.h, n * sizeof(float));
    return b;
}

static int run(const char *name) {
    model m;
    build(&m);
    size_t n = m.nfloats;
    gk_buf start = gk_rand(n, 7, -1, 1);
    memcpy(m.params, start.h, n * sizeof(float));
    optimizer o;
    if (optim_init(&o, name, &m, 0.9f, 0.95f, 1e-8f, 0.1f, 0.9f)) return 1;
    gk_buf p = mirror(m.params, n), mom = mirror(o.m, n), var = mirror(o.v ? o.v : o.m, n);
    optim_table *t = table(&m);
    for (int k = 0; k < STEPS; k++) {
        gk_buf g = gk_rand(n, 100 + (uint64_t)k, -1, 1);
        memcpy(m.grads, g.h, n * sizeof(float));
        float lr = 0.01f * (float)(k + 1) / STEPS;
        optim_step(&o, &m, lr);
        if (o.kind == OPT_SGD) {
            cuda_sgd_step(t, p.d, g.d, mom.d, lr, o.momentum, o.weight_decay);
        } else {
            float bc1 = 1.0f - powf(o.beta1, (float)o.t), bc2 = 1.0f - powf(o.beta2, (float)o.t);
            cuda_adam_step(t, p.d, g.d, mom.d, var.d, lr, o.beta1, o.beta2, o.eps,
                           o.weight_decay, o.kind == OPT_ADAMW, bc1, bc2);
        }
        gk_free(&g);
    }
    memcpy(p.h, m.params, n * sizeof(float));
    memcpy(mom.h, o.m, n * sizeof(float));
    if (o.v) memcpy(var.h, o.v, n * sizeof(float));
    char what[64];
    int bad = 0;
    snprintf(what, sizeof what, "%s params after %d steps", name, STEPS);
    bad += gk_check(what, &p, GK_TOL_FP32);
    snprintf(what, sizeof what, "%s first moment", name);
    bad += gk_check(what, &mom, GK_TOL_FP32);
    if (o.v) {
        snprintf(what, sizeof what, "%s second moment", name);
        bad += gk_check(what, &var, GK_TOL_FP32);
    }
    cuda_optim_table_free(t);
    optim_free(&o);
    model_free(&m);
    gk_free(&start), gk_free(&p), gk_free(&mom), gk_free(&var);
    return bad;
}

static int clip(double max_norm) {
    model m;
    build(&m);
    gk_buf g = gk_rand(m.nfloats, 55, -1, 1);
    memcpy(m.grads, g.h, m.nfloats * sizeof(float));
    double want = clip_grad_norm(&m, max_norm);
    double got = cuda_grad_clip_norm(g.d, g.n, max_norm);
    memcpy(g.h, m.grads, m.nfloats * sizeof(float));
    char what[64];
    int bad = 0;
    snprintf(what, sizeof what, "global norm (max %g)", max_norm);
    bad += gk_check_scalar(what, got, want, 1e-12);
    snprintf(what, sizeof what, "clipped gradients (max %g)", max_norm);
    bad += gk_check(what, &g, GK_TOL_FP32);
    gk_free(&g);
    model_free(&m);
    return bad;
}

int main(void) {
    gk_require_gpu("gpu_optim");
    int failed = 0, total = 0;
    const char *names[] = {"adamw", "adam", "sgd"};
    for (int i = 0; i < 3; i++, total++) failed += run(names[i]) != 0;
    double maxes[] = {0.0, 1.0, 1e9};
    for (int i = 0; i < 3; i++, total++) failed += clip(maxes[i]) != 0;
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
