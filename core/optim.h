/* optim.h: optimizers over the flat parameter buffer, global-norm clipping, LR schedules. */
#ifndef DTRAIN_OPTIM_H
#define DTRAIN_OPTIM_H

#include "kernels.h"
#include "params.h"

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW } opt_kind;

typedef struct optimizer {
    opt_kind kind;
    float beta1, beta2, eps;
    float weight_decay; /* applied only to tensors declared with decay=1 */
    float momentum;     /* SGD */
    long t;             /* steps taken, for Adam's bias correction */
    float *m;           /* Adam first moment / SGD momentum buffer, model.nfloats */
    float *v;           /* Adam second moment (NULL for SGD) */
    optim_table *table; /* the model's tensors, in the backend's memory (kernels.h) */
} optimizer;

/* name: "sgd", "adam" (L2 penalty added to the gradient, as PyTorch's Adam) or "adamw"
 * (decoupled decay, Loshchilov & Hutter). Returns -1 for an unknown name. */
int optim_init(optimizer *o, const char *name, const model *m, float beta1, float beta2,
               float eps, float weight_decay, float momentum);
void optim_step(optimizer *o, model *m, float lr);
void optim_free(optimizer *o);

/* Global L2 norm of all gradients (accumulated in double). If max_norm > 0 and the norm
 * exceeds it, scales the gradients down to max_norm. Returns the norm before clipping. */
double clip_grad_norm(model *m, double max_norm);

typedef enum { LR_CONSTANT, LR_COSINE } lr_kind;
typedef struct lr_schedule {
    lr_kind kind;
    double lr, min_lr;
    long warmup, total;
} lr_schedule;

/* Linear warm-up over `warmup` steps (from lr/warmup up to lr), then constant or cosine
 * decay from lr to min_lr at step `total`. */
double lr_at(const lr_schedule *s, long step);

#endif
