/* params.h: the flat parameter and gradient arenas and their named-tensor table.
 *
 * All parameters of a model live in one allocation, all gradients in another, so one
 * all-reduce, one optimizer loop and one checkpoint pass cover the whole model. A job
 * declares its tensors (name, shape, whether weight decay applies), then calls
 * model_alloc(); views are params + offset.
 *
 * Where the arenas live: the gradients, and the parameters once model_upload ran, are the
 * backend's memory (the GPU's with the CUDA backend: host code must not touch them). The
 * host keeps a staging copy of the parameters, `host`: initialisation writes it (params
 * point at it until the upload), the broadcast sends it, checkpoints pass through it. */
#ifndef DTRAIN_PARAMS_H
#define DTRAIN_PARAMS_H

#include <stddef.h>

#define TENSOR_NAME_MAX 64
#define TENSOR_MAX_DIMS 4

typedef struct tensor_info {
    char name[TENSOR_NAME_MAX];
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    size_t offset; /* in floats, aligned to 16 floats */
    size_t numel;
    int decay; /* weight decay applies (matrices and filters, not biases or norms) */
} tensor_info;

/* Told by the backward pass that every gradient from float `from` to the end of the arena is
 * final for this micro-batch (see model_grads_ready). */
typedef void (*grads_ready_fn)(void *arg, size_t from);

typedef struct model {
    tensor_info *tensors;
    int ntensors, cap;
    size_t nfloats; /* size of each arena, padding included */
    size_t nparams; /* real parameters, padding excluded */
    float *params; /* the host copy until model_upload, then the backend's arena */
    float *grads;  /* the backend's memory */
    float *host;   /* the host staging copy of the parameters, nfloats */
    grads_ready_fn on_grads_ready; /* set by the trainer, may be NULL */
    void *grads_ready_arg;
} model;

/* Declares a tensor; returns its index. Dies if called after model_alloc. */
int model_add(model *m, const char *name, int ndim, const int *shape, int decay);
/* The host copy (zeroed; params point at it) and the gradient arena (backend memory). */
void model_alloc(model *m);
/* params <- the host copy, in backend memory (allocated by the first call; params point
 * there from then on). */
void model_upload(model *m);
/* the host copy <- params */
void model_download(model *m);
void model_free(model *m);

static inline float *model_param(const model *m, int i) { return m->params + m->tensors[i].offset; }
static inline float *model_grad(const model *m, int i) { return m->grads + m->tensors[i].offset; }
int model_find(const model *m, const char *name); /* -1 if absent */
void model_zero_grads(model *m);
/* Called by a backward pass as it goes: the gradients of tensor `first` and of every tensor
 * declared after it are final (backward runs in reverse declaration order, so the final part
 * of the arena grows from its end). The trainer uses it to start reducing those gradients
 * while the rest of the backward pass runs; calls that do not move the boundary down are
 * harmless. */
void model_grads_ready(model *m, int first);

#endif
