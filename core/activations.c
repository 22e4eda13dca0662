#include "activations.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mem_limit.h"
#include "util.h"

/* 16 floats = 64 bytes: every piece starts on a cache line and an AVX-512 vector */
#define ALIGN_FLOATS 16

static size_t aligned(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static act_info *declare(activations *a, void *view, const char *name, int ndim, const int *shape) {
    if (a->arena) DIE("activation '%s' declared after acts_alloc", name);
    if (!view) DIE("activation '%s' has no view to set", name);
    if (ndim < 1 || ndim > ACT_MAX_DIMS) DIE("activation '%s': bad rank %d", name, ndim);
    if (strlen(name) >= ACT_NAME_MAX) DIE("activation name too long: '%s'", name);
    if (acts_find(a, name) >= 0) DIE("activation '%s' declared twice", name);
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->t = xrealloc(a->t, (size_t)a->cap * sizeof *a->t);
    }
    act_info *t = &a->t[a->n++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) DIE("activation '%s': bad dimension %d", name, shape[d]);
        t->shape[d] = shape[d];
        /* the shapes come from the config: a product past 64 bits is a config error */
        if (__builtin_mul_overflow(t->numel, (size_t)shape[d], &t->numel)) mem_limit_check(0, 1, "an activation");
    }
    t->view = view;
    return t;
}

void acts_add(activations *a, float **view, const char *name, int ndim, const int *shape, int grad) {
    declare(a, view, name, ndim, shape)->grad = grad != 0;
}

void acts_add_i32(activations *a, int32_t **view, const char *name, int ndim, const int *shape) {
    declare(a, view, name, ndim, shape)->is_int = 1;
}

void acts_scratch(activations *a, size_t nfloats) {
    if (a->arena) DIE("acts_scratch after acts_alloc");
    if (nfloats > a->scratch_floats) a->scratch_floats = nfloats;
}

/* Offsets: the tensors with a gradient first (the twin's extent), then the others, then the
 * scratch; declaration order within each group. */
static void layout(activations *a) {
    size_t at = 0;
    for (int pass = 1; pass >= 0; pass--) {
        for (int i = 0; i < a->n; i++)
            if (a->t[i].grad == pass) {
                a->t[i].offset = at;
                at += aligned(a->t[i].numel);
            }
        if (pass == 1) a->grad_floats = at;
    }
    a->nfloats = at + aligned(a->scratch_floats);
}

/* Both arenas' bytes, overflow-checked, against the machine's memory, before the layout
 * (whose sums would wrap) and before anything is allocated. */
static void check_size(const activations *a, int with_grads) {
    unsigned long long floats = 0, grads = 0, pad = ALIGN_FLOATS - 1;
    int over = __builtin_add_overflow(a->scratch_floats, pad, &floats);
    for (int i = 0; i < a->n && !over; i++) {
        over = __builtin_add_overflow(floats, a->t[i].numel + pad, &floats) || a->t[i].numel > SIZE_MAX / 8;
        if (a->t[i].grad && with_grads) over = over || __builtin_add_overflow(grads, a->t[i].numel + pad, &grads);
    }
    unsigned long long bytes = 0;
    over = over || __builtin_add_overflow(floats, grads, &bytes) || __builtin_mul_overflow(bytes, 4ull, &bytes);
    mem_limit_check(bytes, over, "the activations");
}

void acts_alloc(activations *a, int with_grads) {
    if (a->arena) DIE("acts_alloc called twice");
    check_size(a, with_grads);
    layout(a);
    a->arena = kernels_alloc(a->nfloats);
    a->grads = with_grads ? kernels_alloc(a->grad_floats) : NULL;
    a->scratch = a->arena + (a->nfloats - aligned(a->scratch_floats));
    for (int i = 0; i < a->n; i++) {
        act_info *t = &a->t[i];
        if (t->is_int)
            *(int32_t **)t->view = (int32_t *)(a->arena + t->offset);
        else
            *(float **)t->view = a->arena + t->offset;
    }
}

void acts_free(activations *a) {
    kernels_free(a->arena);
    kernels_free(a->grads);
    free(a->t);
    memset(a, 0, sizeof *a);
}

/* the declared tensor that holds element `off` of the arena, for error messages */
static const char *name_at(const activations *a, size_t off) {
    for (int i = 0; i < a->n; i++)
        if (off >= a->t[i].offset && off < a->t[i].offset + a->t[i].numel) return a->t[i].name;
    return "(not a declared tensor)";
}

float *acts_grad(const activations *a, const float *view) {
    if (!a->grads) DIE("acts_grad: the activations were allocated without gradients");
    uintptr_t p = (uintptr_t)view, lo = (uintptr_t)a->arena;
    if (p < lo || p >= lo + a->nfloats * sizeof(float))
        DIE("acts_grad: the pointer is outside the activation arena");
    size_t off = (size_t)(p - lo) / sizeof(float);
    if (off >= a->grad_floats) DIE("acts_grad: activation '%s' has no gradient", name_at(a, off));
    return a->grads + off;
}

void acts_zero_grads(activations *a) {
    if (a->grads) kernels_zero(a->grads, a->grad_floats * sizeof *a->grads);
}

int acts_find(const activations *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, name) == 0) return i;
    return -1;
}
