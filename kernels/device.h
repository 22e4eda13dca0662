/* device.h: which backend the kernels.h ops run on, chosen once per process at start-up.
 *
 * Every binary has the CPU backend. One built with CUDA (the real one, or the emulator:
 * build/dtrain-emu) also has the CUDA backend, and kernels/dispatch.c sends each kernels.h
 * call to one or the other: the CPU until kernels_use_cuda switches, then CUDA for the rest
 * of the process. Memory from kernels_alloc is then device memory, which host code reaches
 * only through kernels_to_device / kernels_to_host (kernels.h). */
#ifndef DTRAIN_KERNELS_DEVICE_H
#define DTRAIN_KERNELS_DEVICE_H

#include <stddef.h>

/* 1 when this binary has a CUDA backend (real or emulated), else 0. */
int kernels_cuda_built(void);
/* 1 when that backend is the emulator (build/dtrain-emu), else 0. */
int kernels_cuda_emulated(void);
/* GPUs this process can see: 0 without a CUDA backend, driver or GPU. Never aborts. */
int kernels_cuda_devices(void);

/* Binds the process to GPU `gpu` (0 <= gpu < kernels_cuda_devices()), sets TF32 for the
 * GEMMs (tf32 != 0) and sends every later kernels.h call to the CUDA backend. Must come
 * before the first kernels_alloc (memory allocated before would be host memory the CUDA ops
 * cannot use, and a CUDA context made before binding lands on GPU 0). Returns 0, or -1 with
 * a one-line reason in why[len] (no CUDA in this build, no such GPU, called after an
 * allocation); nothing changes then. */
int kernels_use_cuda(int gpu, int tf32, char *why, size_t len);
/* 1 after kernels_use_cuda succeeded. */
int kernels_on_cuda(void);
/* The GPU ops run on (-1 on the CPU). */
int kernels_device_index(void);
/* "cpu", or the GPU's name as the driver reports it, e.g. "NVIDIA H200". */
const char *kernels_device_name(void);
/* The cudaStream_t every op is enqueued on (NULL on the CPU): for NCCL to order its
 * collectives after the backward pass's kernels. */
void *kernels_stream(void);

#endif
