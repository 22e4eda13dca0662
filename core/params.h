/* params.h: the flat parameter and gradient arenas and their named-tensor table.
 *
 * All parameters of a model live in one allocation, all gradients in another, so one
 * all-reduce, one optimizer loop and one checkpoint pass cover the whole model. A job
 * declares its tensors (name, shape, whether weight decay applies), then calls
 * model_alloc(); views are params + offset. */
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

typedef struct model {
    tensor_info *tensors;
    int ntensors, cap;
    size_t nfloats; /* size of each arena, padding included */
    size_t nparams; /* real parameters, padding excluded */
    float *params;
    float *grads;
} model;

/* Declares a tensor; returns its index. Dies if called after model_alloc. */
int model_add(model *m, const char *name, int ndim, const int *shape, int decay);
void model_alloc(model *m);
void model_free(model *m);

static inline float *model_param(const model *m, int i) { return m->params + m->tensors[i].offset; }
static inline float *model_grad(const model *m, int i) { return m->grads + m->tensors[i].offset; }
int model_find(const model *m, const char *name); /* -1 if absent */
void model_zero_grads(model *m);

#endif
