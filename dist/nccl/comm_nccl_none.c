/* comm_nccl_none.c: comm_nccl.h in a binary without NCCL (a CPU-only build, or CUDA without
 * NCCL found). comm_nccl_built says so, and callers choose another way (the trainer reduces
 * device gradients through the host and MPI); comm_nccl_init, if called anyway, ends the job
 * with a one-line error. No comm_nccl can exist here, so the calls that take one are never
 * reached; they end the job too rather than pretend.
 *
 * Linked through dtrain_dist (an archive): a binary that links the communicator's object
 * (dtrain_dist_nccl or dtrain_dist_nccl_emu, object libraries) defines the same symbols
 * first, so this file is never pulled in there. */
#include <stdio.h>
#include <stdlib.h>

#include "nccl/comm_nccl.h"

int comm_nccl_built(void) { return 0; }

comm_nccl *comm_nccl_init(comm *mpi, int device) {
    (void)device;
    comm_abort(mpi, 2, "this dtrain was built without NCCL: configure with NCCL found (NCCL_HOME) "
                       "for GPU gradient all-reduce");
    return NULL;
}

static _Noreturn void no_communicator(const char *call) {
    fprintf(stderr, "dtrain: internal error: %s called, but this binary has no NCCL communicator\n",
            call);
    abort();
}

void comm_nccl_finalize(comm_nccl *c) {
    (void)c;
    no_communicator("comm_nccl_finalize");
}
int comm_nccl_device(const comm_nccl *c) {
    (void)c;
    no_communicator("comm_nccl_device");
}
void comm_nccl_set_bucket_floats(comm_nccl *c, size_t floats) {
    (void)c, (void)floats;
    no_communicator("comm_nccl_set_bucket_floats");
}
void comm_nccl_allreduce_mean_f32_async(comm_nccl *c, float *buf, size_t n, void *after) {
    (void)c, (void)buf, (void)n, (void)after;
    no_communicator("comm_nccl_allreduce_mean_f32_async");
}
void comm_nccl_join(comm_nccl *c, void *stream) {
    (void)c, (void)stream;
    no_communicator("comm_nccl_join");
}
void comm_nccl_wait(comm_nccl *c) {
    (void)c;
    no_communicator("comm_nccl_wait");
}
void comm_nccl_allreduce_mean_f32(comm_nccl *c, float *buf, size_t n, void *after) {
    (void)c, (void)buf, (void)n, (void)after;
    no_communicator("comm_nccl_allreduce_mean_f32");
}
