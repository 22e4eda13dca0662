/* comm.h: the communicator. Rank, world, local rank, collectives, and a clean abort.
 * The MPI implementation is dist/comm_mpi.c; an NCCL one shares this interface. */
#ifndef DTRAIN_COMM_H
#define DTRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct comm comm;

/* Initialises MPI (works as a singleton without mpirun). Errors from MPI calls are
 * returned, not fatal, so that every failure is reported with the rank that saw it. */
comm *comm_init(int *argc, char ***argv);
void comm_finalize(comm *c);

int comm_rank(const comm *c);
int comm_world(const comm *c);
int comm_local_rank(const comm *c);  /* rank among the processes on this node */
int comm_local_size(const comm *c);
int comm_nodes(const comm *c);       /* number of distinct nodes in the world */
/* the distinct host names, comma-separated, in rank order ("node1,node2"); past 8, ",..." */
const char *comm_node_list(const comm *c);
const char *comm_host_of(const comm *c, int rank);
/* Deadline of the gradient all-reduce and of the step's agreement that follows it
 * (comm_step_sum_f64), in seconds (0 = none, the default). Past it, or on an MPI error
 * inside either, the ranks still running find out which peers no longer answer, and the
 * job ends with a message naming them and their hosts (exit 3). The other collectives have
 * no deadline: they may wait for rank 0 writing a checkpoint, whose length is unbounded. */
void comm_set_timeout(comm *c, double seconds);

/* buf[n] <- mean over ranks of buf[n] (sum then scale by 1/world) */
void comm_allreduce_mean_f32(comm *c, float *buf, size_t n);
/* buf[n] <- sum over ranks, under the deadline: for the small all-reduce each step makes
 * right after the gradient all-reduce, which every healthy rank reaches within a step */
void comm_step_sum_f64(comm *c, double *buf, size_t n);
void comm_allreduce_sum_f64(comm *c, double *buf, size_t n);
void comm_allreduce_sum_i64(comm *c, int64_t *buf, size_t n);
void comm_allreduce_max_i32(comm *c, int32_t *buf, size_t n);
void comm_bcast(comm *c, void *buf, size_t bytes, int root);
/* gathers `bytes` from every rank into out[world * bytes] on every rank */
void comm_allgather(comm *c, const void *in, void *out, size_t bytes);
void comm_barrier(comm *c);

/* Prints "dtrain: rank R/W: <message>" to stderr and brings every rank down with `code`. */
_Noreturn void comm_abort(comm *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
