/* device_select.h: where a run's ops go (keys device, gpu, tf32), chosen and bound once at
 * start-up, before the job allocates anything (kernels/device.h). */
#ifndef DTRAIN_DEVICE_SELECT_H
#define DTRAIN_DEVICE_SELECT_H

#include "trainer.h"

/* Reads device, gpu and tf32 from t->cfg and binds the backend: cpu, or cuda on the GPU of
 * this rank (`gpu`, else the local rank). auto is cuda only when this build has CUDA and every
 * rank sees a GPU (so that the ranks agree). Collective: every rank calls it. Returns 0, or
 * EXIT_USAGE after a one-line error (cuda asked for in a build without CUDA, no GPU visible,
 * no such GPU). */
int trainer_select_device(trainer *t);

/* The gradient reducer for the bound device (grad_reduce.h): on the CPU, MPI over host
 * memory; on cuda with NCCL, NCCL buckets launched as the backward pass reports them (the
 * NCCL communicator is created here, collectively, in t->nccl); on cuda without NCCL, a copy
 * to the host, MPI, a copy back. Call it after model_alloc, on every rank. */
struct grad_reducer *trainer_gradient_reducer(trainer *t);

/* "cpu", or e.g. "cuda (GPU 1: NVIDIA H200, tf32 off)": for the start-up line */
const char *trainer_device_text(const trainer *t, char *buf, size_t len);

#endif
