/* comm_nccl.h: the NCCL communicator for device buffers, one rank per GPU.
 *
 * It sits beside the MPI communicator (comm.h), not instead of it: MPI starts the job,
 * says who is where, carries NCCL's unique id from rank 0 to the others, and keeps the
 * small host-side collectives (loss sums, agreement on signals); NCCL reduces the
 * gradients where they live, on the GPUs.
 *
 * Streams are passed as void * (a cudaStream_t), so that callers need no CUDA header;
 * NULL means the legacy default stream.
 *
 * Nothing here can hang a job: NCCL runs in its non-blocking mode, and every wait polls
 * the communicator's asynchronous error state with a timeout (DTRAIN_NCCL_TIMEOUT
 * seconds, default 600). An NCCL or CUDA error, or the timeout, aborts the NCCL
 * communicator and then the job through comm_abort, with a line naming the rank, the call
 * and NCCL's message. */
#ifndef DTRAIN_COMM_NCCL_H
#define DTRAIN_COMM_NCCL_H

#include <stddef.h>

#include "comm.h"

typedef struct comm_nccl comm_nccl;

/* 1 when this binary has NCCL (dtrain built with CUDA and NCCL found, or build/dtrain-emu's
 * emulated NCCL), else 0: then comm_nccl_init ends the job with a one-line error, and device
 * gradients go through the host and MPI instead. Every binary links one of the two: the
 * communicator (comm_nccl.c) or comm_nccl_none.c, which is what `dtrain_dist` brings. */
int comm_nccl_built(void);

/* The rank's place on its node: OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, else
 * the MPI communicator's own count (comm_local_rank). */
int comm_nccl_local_rank(const comm *mpi);

/* The GPU a rank drives: `device` when >= 0 (a config key), else its local rank. With a
 * single visible GPU (Slurm's --gpus-per-task, or CUDA_VISIBLE_DEVICES set per rank) every
 * rank takes device 0. Returns -1 and fills why[] when no choice works. */
int comm_nccl_pick_device(int device, int local_rank, int visible, char *why, size_t why_len);

/* Binds the rank to its GPU (cudaSetDevice, so the CUDA kernels created afterwards on this
 * thread use the same one) and creates the NCCL communicator over all ranks of `mpi`.
 * Collective: every rank calls it. Aborts the job on any failure. */
comm_nccl *comm_nccl_init(comm *mpi, int device);
/* Waits for outstanding reductions, then frees the communicator. Collective. */
void comm_nccl_finalize(comm_nccl *c);

int comm_nccl_device(const comm_nccl *c);

/* Floats per NCCL call (default 25 MiB of floats, the bucket size of PyTorch DDP). */
void comm_nccl_set_bucket_floats(comm_nccl *c, size_t floats);

/* buf[n] (device) <- the mean over ranks, enqueued on the communicator's own stream after
 * everything already enqueued on `after`, in buckets; returns at once. Call it once per
 * gradient bucket as soon as the backward pass has produced it, and the reductions run
 * while the backward pass goes on. */
void comm_nccl_allreduce_mean_f32_async(comm_nccl *c, float *buf, size_t n, void *after);
/* Makes `stream` wait (on the device, the host does not block) for every reduction
 * enqueued so far: the optimizer step goes on `stream` after this. */
void comm_nccl_join(comm_nccl *c, void *stream);
/* Blocks the host until every enqueued reduction has finished; watches for NCCL errors
 * and the timeout meanwhile. */
void comm_nccl_wait(comm_nccl *c);
/* async + wait, for callers without overlap */
void comm_nccl_allreduce_mean_f32(comm_nccl *c, float *buf, size_t n, void *after);

#endif
