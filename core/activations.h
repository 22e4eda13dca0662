/* activations.h: one arena for a network's activations and scratch, and one for their gradients.
 *
 * A network declares, once per batch capacity, every tensor its forward pass keeps (name,
 * shape, whether the backward pass needs its gradient) and the scratch its ops ask for, then
 * calls acts_alloc: each declared view (a pointer field of the network) is set to its place in
 * one arena. Both arenas come from kernels_alloc, so with a GPU backend they are device
 * memory, and nothing is allocated after set-up. Host code never dereferences a view: inputs
 * go in with kernels_to_device, results the host needs come out with kernels_to_host.
 *
 * Gradients: the tensors declared with one are laid out first, in declaration order, and the
 * gradient arena (the twin) covers exactly them, so the gradient of such a tensor sits at the
 * same offset in the twin: acts_grad(a, view). A backward pass that zeroes the twin once and
 * lets every op accumulate gets the fan-outs (skip connections, shared inputs) right with no
 * bookkeeping. Tensors without a gradient (saved statistics, inputs, losses, a network's own
 * gradient buffers) follow, then the scratch: one region shared by every op, as long as the
 * largest request, since ops run one at a time.
 *
 * Every piece starts on a 64-byte line (16 floats), as a kernels_alloc would. Int32 tensors
 * (token ids, labels) live in the same arena: the ops that read them run where it is. */
#ifndef DTRAIN_ACTIVATIONS_H
#define DTRAIN_ACTIVATIONS_H

#include <stddef.h>
#include <stdint.h>

#define ACT_NAME_MAX 64
#define ACT_MAX_DIMS 4

typedef struct act_info {
    char name[ACT_NAME_MAX];
    int ndim;
    int shape[ACT_MAX_DIMS];
    size_t numel;
    size_t offset; /* in 4-byte elements from the arena's start, a multiple of 16 */
    int grad;      /* has a twin in the gradient arena */
    int is_int;    /* int32 elements (view is int32_t **), else float (float **) */
    void *view;    /* where acts_alloc writes the tensor's address */
} act_info;

typedef struct activations {
    act_info *t;
    int n, cap;
    size_t grad_floats;    /* the twin's length: the tensors with a gradient */
    size_t nfloats;        /* the arena's length: every tensor, then the scratch */
    size_t scratch_floats; /* the largest scratch request */
    float *arena;
    float *grads;   /* NULL when allocated without gradients (inference) */
    float *scratch; /* inside the arena, after the tensors */
} activations;

/* Declares a float tensor; acts_alloc sets *view. grad: the backward pass needs its gradient.
 * Dies after acts_alloc, on a bad shape or a repeated name. */
void acts_add(activations *a, float **view, const char *name, int ndim, const int *shape, int grad);
/* Declares an int32 tensor (no gradient). */
void acts_add_i32(activations *a, int32_t **view, const char *name, int ndim, const int *shape);
/* The shared scratch will hold at least nfloats. */
void acts_scratch(activations *a, size_t nfloats);

/* Lays out and allocates both arenas (the twin only when with_grads), zeroed, and sets every
 * declared view and a->scratch. */
void acts_alloc(activations *a, int with_grads);
/* Frees the arenas and forgets the declarations: the network may declare again (e.g. for a
 * larger batch). The views it holds are dangling until the next acts_alloc. */
void acts_free(activations *a);

/* The gradient of the tensor at `view` (the start of a declared tensor or any element of
 * one). Dies when that tensor has no gradient or the arenas hold no twin. */
float *acts_grad(const activations *a, const float *view);
/* Zeroes the whole twin (kernels_zero: ordered with the ops, on any backend). */
void acts_zero_grads(activations *a);
/* Index of the declared tensor `name`, -1 if absent. */
int acts_find(const activations *a, const char *name);

#endif
