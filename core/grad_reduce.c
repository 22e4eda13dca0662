/* grad_reduce.c: see grad_reduce.h. */
#include "grad_reduce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

typedef enum { REDUCE_HOST, REDUCE_STAGED, REDUCE_BUCKETS } reduce_kind;

struct grad_reducer {
    reduce_kind kind;
    comm *comm;
    model *m;
    float *staging;       /* staged: the host buffer, nfloats */
    grad_bucket *buckets; /* buckets: in launch order */
    int nbuckets;
    int next;             /* the first bucket not launched in this step */
    grad_bucket_ops ops;
    int owns_arg;         /* ops.arg is freed with the reducer */
    char what[96];
};

static grad_reducer *reducer_new(reduce_kind kind, comm *c, model *m) {
    grad_reducer *r = xcalloc(1, sizeof *r);
    r->kind = kind;
    r->comm = c;
    r->m = m;
    return r;
}

grad_reducer *grad_reduce_host(comm *c, model *m) {
    grad_reducer *r = reducer_new(REDUCE_HOST, c, m);
    snprintf(r->what, sizeof r->what, "MPI on host memory");
    return r;
}

grad_reducer *grad_reduce_staged(comm *c, model *m) {
    grad_reducer *r = reducer_new(REDUCE_STAGED, c, m);
    r->staging = xmalloc((m->nfloats ? m->nfloats : 1) * sizeof(float));
    snprintf(r->what, sizeof r->what, "MPI through a host copy (no NCCL)");
    return r;
}

int grad_reduce_plan(const model *m, size_t bucket_floats, grad_bucket *out) {
    int n = 0;
    size_t to = m->nfloats;
    for (int i = m->ntensors - 1; i >= 0; i--) {
        size_t from = m->tensors[i].offset;
        /* a bucket closes at a tensor's start once it holds bucket_floats, and always at 0 */
        if (to - from >= bucket_floats || i == 0) {
            if (out) out[n] = (grad_bucket){from, to};
            n++;
            to = from;
        }
    }
    return n;
}

grad_reducer *grad_reduce_buckets(model *m, size_t bucket_floats, grad_bucket_ops ops) {
    grad_reducer *r = reducer_new(REDUCE_BUCKETS, NULL, m);
    if (bucket_floats == 0) bucket_floats = 1;
    r->buckets = xcalloc((size_t)(m->ntensors > 0 ? m->ntensors : 1), sizeof *r->buckets);
    r->nbuckets = m->ntensors > 0 ? grad_reduce_plan(m, bucket_floats, r->buckets) : 0;
    r->ops = ops;
    size_t biggest = 0;
    for (int b = 0; b < r->nbuckets; b++)
        if (r->buckets[b].to - r->buckets[b].from > biggest) biggest = r->buckets[b].to - r->buckets[b].from;
    snprintf(r->what, sizeof r->what, "NCCL, %d bucket%s of up to %.1f MiB", r->nbuckets,
             r->nbuckets == 1 ? "" : "s", (double)biggest * sizeof(float) / (1 << 20));
    return r;
}

grad_reducer *grad_reduce_buckets_owning(model *m, size_t bucket_floats, grad_bucket_ops ops) {
    grad_reducer *r = grad_reduce_buckets(m, bucket_floats, ops);
    r->owns_arg = 1;
    return r;
}

void grad_reduce_free(grad_reducer *r) {
    if (!r) return;
    if (r->owns_arg) free(r->ops.arg);
    if (r->m && r->m->grads_ready_arg == r) r->m->on_grads_ready = NULL, r->m->grads_ready_arg = NULL;
    free(r->staging);
    free(r->buckets);
    free(r);
}

const char *grad_reduce_describe(const grad_reducer *r) { return r->what; }

/* Launches, in order, every bucket not launched yet that lies in [from, end). */
static void launch_ready(grad_reducer *r, size_t from) {
    while (r->next < r->nbuckets && r->buckets[r->next].from >= from) {
        const grad_bucket *b = &r->buckets[r->next++];
        r->ops.launch(r->ops.arg, r->m->grads + b->from, b->to - b->from);
    }
}

static void on_grads_ready(void *arg, size_t from) { launch_ready(arg, from); }

void grad_reduce_arm(grad_reducer *r) {
    if (r->kind != REDUCE_BUCKETS) return;
    r->next = 0;
    r->m->on_grads_ready = on_grads_ready;
    r->m->grads_ready_arg = r;
}

void grad_reduce_finish(grad_reducer *r) {
    model *m = r->m;
    switch (r->kind) {
    case REDUCE_HOST:
        comm_allreduce_mean_f32(r->comm, m->grads, m->nfloats);
        break;
    case REDUCE_STAGED:
        if (comm_world(r->comm) == 1) break;
        kernels_to_host(r->staging, m->grads, m->nfloats * sizeof(float));
        comm_allreduce_mean_f32(r->comm, r->staging, m->nfloats);
        kernels_to_device(m->grads, r->staging, m->nfloats * sizeof(float));
        break;
    case REDUCE_BUCKETS:
        /* a backward pass that reported nothing (or not down to 0) leaves buckets: now */
        launch_ready(r, 0);
        r->ops.join(r->ops.arg);
        m->on_grads_ready = NULL;
        m->grads_ready_arg = NULL;
        r->next = 0;
        break;
    }
}
