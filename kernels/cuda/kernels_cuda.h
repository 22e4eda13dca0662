/* kernels_cuda.h: the CUDA backend, callable from C next to the CPU backend.
 *
 * Names. The CUDA backend implements every op of kernels.h with the same signature, and
 * this session's binaries link both backends, so the CUDA symbols carry a cuda_ prefix:
 * cuda_linear_forward, cuda_kernels_alloc, and so on. The prefix comes from the
 * preprocessor, not from a second hand-written list of prototypes: names.h maps each
 * kernels.h name to cuda_<name>, and this header includes kernels.h a second time under
 * that mapping, so every cuda_ declaration is the kernels.h text itself and cannot drift
 * from it. The .cu files are written with the plain names (they include names.h first),
 * so dropping names.h builds them unprefixed, e.g. for a dispatch table or a CUDA-only
 * binary. tests/gpu/check_names.sh keeps names.h complete. One limit of the trick:
 * kernels.h must hold only prototypes (a static inline function there would be defined
 * twice).
 *
 * Pointers. Every float and int32 pointer passed to a cuda_ op is a DEVICE pointer
 * (cuda_kernels_alloc, cuda_kernels_alloc_bytes); the int and size arguments are host
 * values. The optimizer table (optim_table_create) lives in device memory too.
 * Ops are asynchronous on one stream (cuda_kernels_stream); the two ops that
 * return a loss (cuda_softmax_xent_forward, cuda_mse_forward) wait for it, because the
 * value goes to the host. Results are deterministic: no float atomics, every sum has a
 * fixed order that depends on the shapes only.
 *
 * Errors. A CUDA or cuBLAS failure prints the call, the file, the line and the message,
 * then aborts; there is nothing sensible to continue with. Bad indices found on the device
 * (a negative token id, a target outside [0, V)) are recorded there and reported at the
 * next synchronising call (cuda_softmax_xent_forward, cuda_kernels_synchronize). */
#ifndef DTRAIN_KERNELS_CUDA_H
#define DTRAIN_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* kernels.h has no linkage block of its own; the .cu files are C++ */
#endif

#include "kernels.h" /* the CPU names, declared as usual */

/* The same declarations again, renamed. */
#undef DTRAIN_KERNELS_H
#include "names.h"
#include "kernels.h"
#define KC_NAMES_UNDEF
#include "names.h"
#undef KC_NAMES_UNDEF

/* ---- device ----------------------------------------------------------------------- */

/* 1 when a CUDA device can be used. Any error (35, "insufficient driver", on a machine
 * without a driver) or a count of 0 means no. Never aborts. */
int cuda_kernels_available(void);
/* GPUs visible to this process (0 on any error, as above). Never aborts. */
int cuda_kernels_device_count(void);
/* Binds this process to device `dev`. Call before any other cuda_ function; the default is
 * the current device (0 unless the caller chose). */
void cuda_kernels_set_device(int dev);
/* The device ops run on, and its name as the driver reports it ("NVIDIA H200"). */
int cuda_kernels_get_device(void);
const char *cuda_kernels_device_name(void);
/* TF32 tensor cores for the GEMMs (about 1e-3 relative error instead of 1e-6). Off by
 * default. */
void cuda_kernels_set_tf32(int on);
int cuda_kernels_get_tf32(void);
/* The cudaStream_t every op is enqueued on (as void *, so C callers need no CUDA header). */
void *cuda_kernels_stream(void);

/* ---- memory ----------------------------------------------------------------------- */

/* Device memory of any type, zeroed; aborts naming the size on failure. Free with
 * cuda_kernels_free_bytes. */
void *cuda_kernels_alloc_bytes(size_t bytes);
void cuda_kernels_free_bytes(void *p);
/* dst[n] = value (asynchronous; tests poison outputs with NaN this way) */
void cuda_kernels_fill(float *dst, float value, size_t n);

#ifdef __cplusplus
}
#endif

#endif
