#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

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
    /* the steps run in the backend (kernels.h), over the model's tensor table */
    optim_span *spans = xcalloc((size_t)m->ntensors + 1, sizeof *spans);
    for (int i = 0; i < m->ntensors; i++)
        spans[i] = (optim_span){m->tensors[i].offset, m->tensors[i].numel, m->tensors[i].decay};
    o->table = optim_table_create(spans, m->ntensors);
    free(spans);
    return 0;
}

void optim_free(optimizer *o) {
    kernels_free(o->m);
    kernels_free(o->v);
    if (o->table) optim_table_free(o->table);
    o->m = o->v = NULL;
    o->table = NULL;
}

void optim_step(optimizer *o, model *m, float lr) {
    o->t++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->t);
    float bc2 = 1.0f - powf(o->beta2, (float)o->t);
    if (o->kind == OPT_SGD)
        sgd_step(o->table, m->params, m->grads, o->m, lr, o->momentum, o->weight_decay);
    else
        adam_step(o->table, m->params, m->grads, o->m, o->v, lr, o->beta1, o->beta2, o->eps,
                  o->weight_decay, o->kind == OPT_ADAMW, bc1, bc2);
}

double clip_grad_norm(model *m, double max_norm) {
    return grad_clip_norm(m->grads, m->nfloats, max_norm);
}

double lr_at(const lr_schedule *s, long step) {
    if (step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == LR_CONSTANT) return s->lr;
    if (step >= s->total) return s->min_lr;
    double ratio = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return s->min_lr + coeff * (s->lr - s->min_lr);
}
