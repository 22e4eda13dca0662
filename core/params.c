#include "params.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

/* 16 floats = 64 bytes: every tensor starts on a cache line and an AVX-512 vector */
#define ALIGN_FLOATS 16

int model_add(model *m, const char *name, int ndim, const int *shape, int decay) {
    if (m->params) DIE("model_add('%s') after model_alloc", name);
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) DIE("tensor '%s': bad rank %d", name, ndim);
    if (strlen(name) >= TENSOR_NAME_MAX) DIE("tensor name too long: '%s'", name);
    if (model_find(m, name) >= 0) DIE("tensor '%s' declared twice", name);
    if (m->ntensors == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->tensors = xrealloc(m->tensors, (size_t)m->cap * sizeof *m->tensors);
    }
    tensor_info *t = &m->tensors[m->ntensors];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) DIE("tensor '%s': bad dimension %d", name, shape[d]);
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->decay = decay;
    t->offset = m->nfloats;
    m->nfloats += (t->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    m->nparams += t->numel;
    return m->ntensors++;
}

void model_alloc(model *m) {
    size_t bytes = (m->nfloats * sizeof(float) + 63) & ~(size_t)63;
    m->host = aligned_alloc(64, bytes ? bytes : 64);
    if (!m->host) DIE("out of memory for the host copy of %zu parameters", m->nfloats);
    memset(m->host, 0, bytes);
    m->params = m->host;
    m->grads = kernels_alloc(m->nfloats);
}

void model_upload(model *m) {
    if (m->params == m->host) m->params = kernels_alloc(m->nfloats);
    kernels_to_device(m->params, m->host, m->nfloats * sizeof(float));
}

void model_download(model *m) {
    if (m->params != m->host) kernels_to_host(m->host, m->params, m->nfloats * sizeof(float));
}

void model_free(model *m) {
    if (m->params != m->host) kernels_free(m->params);
    free(m->host);
    kernels_free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

int model_find(const model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

void model_zero_grads(model *m) { kernels_zero(m->grads, m->nfloats * sizeof(float)); }

void model_grads_ready(model *m, int first) {
    if (first < 0 || first >= m->ntensors) DIE("model_grads_ready: no tensor %d", first);
    if (m->on_grads_ready) m->on_grads_ready(m->grads_ready_arg, m->tensors[first].offset);
}
