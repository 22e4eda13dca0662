/* grad_reduce_nccl.c: the bucket operations of grad_reduce.h over the NCCL communicator.
 * Kept apart from grad_reduce.c so that only a binary that asks for NCCL links it. */
#include "grad_reduce.h"
#include "nccl/comm_nccl.h"
#include "util.h"

typedef struct {
    comm_nccl *nc;
    void *stream; /* the stream the backward pass and the optimizer run on */
} nccl_ops;

/* after everything already enqueued on the compute stream: the bucket's last gradients */
static void nccl_launch(void *arg, float *buf, size_t n) {
    nccl_ops *o = arg;
    comm_nccl_allreduce_mean_f32_async(o->nc, buf, n, o->stream);
}

/* The optimizer's stream waits for the reductions on the device; the host then waits too,
 * polling under DTRAIN_NCCL_TIMEOUT: the step's next blocking call (the gradient norm's
 * copy) would otherwise wait forever for a peer that died. */
static void nccl_join(void *arg) {
    nccl_ops *o = arg;
    comm_nccl_join(o->nc, o->stream);
    comm_nccl_wait(o->nc);
}

grad_reducer *grad_reduce_nccl(comm_nccl *nc, model *m, void *stream, size_t bucket_floats) {
    nccl_ops *o = xcalloc(1, sizeof *o);
    o->nc = nc;
    o->stream = stream;
    return grad_reduce_buckets_owning(m, bucket_floats, (grad_bucket_ops){nccl_launch, nccl_join, o});
}
