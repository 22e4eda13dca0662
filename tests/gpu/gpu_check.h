/* gpu_check.h: what the GPU tests share: the skip protocol, tensors that live twice (a
 * host copy for the CPU reference and a device copy for the CUDA op), and the comparison.
 *
 * Skipping. ctest counts a test as skipped when it exits with 77 (SKIP_RETURN_CODE in
 * tests/gpu/CMakeLists.txt). gk_require_gpu exits so, with a line saying why, whenever no
 * device can be used: a machine without a driver (cudaGetDeviceCount returns 35), without
 * a GPU, or with CUDA_VISIBLE_DEVICES empty. A skipped test has proved nothing.
 *
 * Comparison. err = max_i |got_i - want_i| / max_i |want_i| over the tensor (relative to
 * its largest entry, so that entries near zero, where any two summation orders differ in
 * relative terms, do not decide alone), and any NaN in got fails. Outputs are poisoned
 * with NaN before each op on both sides, so an element the op forgets to write fails;
 * gradient buffers start from the same random values on both sides instead (the ops
 * accumulate), so an op that overwrites instead of adding fails too.
 *
 * Determinism. With GK_DIGEST=file in the environment every checked device result also
 * appends "what hash" to the file; two runs of a case must give identical files (the
 * kernels use no float atomics; bench/gpu_check.sh compares them). */
#ifndef DTRAIN_GPU_CHECK_H
#define DTRAIN_GPU_CHECK_H

#include <stddef.h>
#include <stdint.h>

#define GK_TOL_FP32 1e-5
#define GK_TOL_TF32 1e-3
#define GK_SKIP 77

/* Exits 77 with "SKIPPED: <test>: <why>" unless a CUDA device is usable. */
void gk_require_gpu(const char *test);

/* A float tensor in both places: h (host, for the CPU op) and d (device, for the CUDA op). */
typedef struct {
    float *h, *d;
    size_t n;
} gk_buf;

/* uniform in [lo, hi) from `seed`, the same values on both sides */
gk_buf gk_rand(size_t n, uint64_t seed, float lo, float hi);
/* NaN on both sides: for outputs */
gk_buf gk_nan(size_t n);
/* poisons an existing buffer again (before a second run into it) */
void gk_poison(gk_buf *b);
void gk_free(gk_buf *b);
/* NULL pair, for optional arguments */
static inline gk_buf gk_none(void) {
    gk_buf b = {0, 0, 0};
    return b;
}

/* int32 ids in [0, hi) on both sides */
typedef struct {
    int32_t *h, *d;
    size_t n;
} gk_ids;
gk_ids gk_rand_ids(size_t n, uint64_t seed, int hi);
void gk_free_ids(gk_ids *b);

/* Compares the device copy against the host copy: prints one line "ok"/"FAIL" with the
 * error, returns 1 on failure. */
int gk_check(const char *what, const gk_buf *b, double tol);
/* The same for two scalars (losses). */
int gk_check_scalar(const char *what, double got, double want, double tol);

#endif
