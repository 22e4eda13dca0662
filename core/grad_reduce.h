/* grad_reduce.h: the gradient arena averaged over the ranks, once per step.
 *
 * One of three ways, chosen when the trainer is set up:
 *  - host: the arena is host memory (the CPU backend): one MPI all-reduce over it, in place.
 *  - staged: the arena is device memory and there is no NCCL: it is copied into a host
 *    buffer, averaged there by MPI and copied back.
 *  - buckets: the arena is device memory and NCCL reduces it where it lives. The arena is
 *    cut at tensor boundaries into buckets of about `bucket_floats`, from its end: backward
 *    runs in reverse declaration order, so the end of the arena is final first. On the last
 *    micro-batch of a step (grad_reduce_arm), each model_grads_ready the backward pass
 *    reports launches the buckets that have become final, and their reductions run while
 *    the rest of the backward pass does. The cut depends only on the model's tensors, so
 *    every rank reduces the same ranges in the same order, run after run.
 * Every buffer is allocated here, at set-up: nothing is allocated or freed during a step
 * (on a GPU that would synchronise the device under reductions in flight). */
#ifndef DTRAIN_GRAD_REDUCE_H
#define DTRAIN_GRAD_REDUCE_H

#include <stddef.h>

#include "comm.h"
#include "params.h"

/* floats [from, to) of the arena */
typedef struct grad_bucket {
    size_t from, to;
} grad_bucket;

/* How buckets are reduced. launch: enqueue the mean over ranks of buf[n] (device memory) and
 * return at once; join: everything launched so far is done before anything that follows
 * (the optimizer step) touches the arena, and the host has waited for it under a timeout. */
typedef struct grad_bucket_ops {
    void (*launch)(void *arg, float *buf, size_t n);
    void (*join)(void *arg);
    void *arg;
} grad_bucket_ops;

typedef struct grad_reducer grad_reducer;

grad_reducer *grad_reduce_host(comm *c, model *m);
grad_reducer *grad_reduce_staged(comm *c, model *m);
grad_reducer *grad_reduce_buckets(model *m, size_t bucket_floats, grad_bucket_ops ops);
/* the same, and ops.arg is freed with the reducer */
grad_reducer *grad_reduce_buckets_owning(model *m, size_t bucket_floats, grad_bucket_ops ops);
/* Buckets reduced by NCCL (grad_reduce_nccl.c), launched after the work enqueued so far on
 * `stream` (a cudaStream_t: the backend's), joined onto it. */
struct comm_nccl;
grad_reducer *grad_reduce_nccl(struct comm_nccl *nc, model *m, void *stream, size_t bucket_floats);
void grad_reduce_free(grad_reducer *r);

/* Before the last micro-batch's forward/backward: from here on, the model's reports of final
 * gradients launch buckets (buckets only; the other ways wait for grad_reduce_finish). */
void grad_reduce_arm(grad_reducer *r);
/* After the backward pass: every gradient is the mean over ranks (with buckets: the
 * reductions are joined). Disarms. */
void grad_reduce_finish(grad_reducer *r);

/* The buckets of a model, in launch order (from the end of the arena to its start); they
 * cover the arena exactly. Returns how many; out (may be NULL) holds ntensors entries. */
int grad_reduce_plan(const model *m, size_t bucket_floats, grad_bucket *out);
/* e.g. "MPI on host memory", "NCCL, 3 buckets of up to 25.0 MiB" (for the start-up line) */
const char *grad_reduce_describe(const grad_reducer *r);

#endif
