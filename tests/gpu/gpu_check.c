/* gpu_check.c: see gpu_check.h. */
#include "gpu_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/kernels_cuda.h"
#include "rng.h"

void gk_require_gpu(const char *test) {
    if (cuda_kernels_available()) return;
    printf("SKIPPED: %s: no usable CUDA device (no driver, no GPU, or none visible)\n", test);
    fflush(stdout);
    exit(GK_SKIP);
}

/* the CPU backend's allocator: aligned as the CPU ops expect, aborts on failure */
static float *host_alloc(size_t n) { return kernels_alloc(n); }

gk_buf gk_rand(size_t n, uint64_t seed, float lo, float hi) {
    gk_buf b = {host_alloc(n), cuda_kernels_alloc(n), n};
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rng_splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        b.h[i] = lo + (float)u * (hi - lo);
    }
    cuda_kernels_to_device(b.d, b.h, n * sizeof(float));
    return b;
}

void gk_poison(gk_buf *b) {
    for (size_t i = 0; i < b->n; i++) b->h[i] = NAN;
    cuda_kernels_fill(b->d, NAN, b->n);
}

gk_buf gk_nan(size_t n) {
    gk_buf b = {host_alloc(n), cuda_kernels_alloc(n), n};
    gk_poison(&b);
    return b;
}

void gk_free(gk_buf *b) {
    kernels_free(b->h);
    cuda_kernels_free(b->d);
    b->h = b->d = NULL;
}

gk_ids gk_rand_ids(size_t n, uint64_t seed, int hi) {
    gk_ids b = {malloc((n ? n : 1) * sizeof(int32_t)), NULL, n};
    if (!b.h) exit(1);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) b.h[i] = (int32_t)(rng_splitmix64(&s) % (uint64_t)hi);
    b.d = cuda_kernels_alloc_bytes(n * sizeof(int32_t));
    cuda_kernels_to_device(b.d, b.h, n * sizeof(int32_t));
    return b;
}

void gk_free_ids(gk_ids *b) {
    free(b->h);
    cuda_kernels_free_bytes(b->d);
    b->h = b->d = NULL;
}

/* GK_DIGEST=file: appends "what hash" for every device result checked, so that two runs
 * of the same case can be compared bit for bit (bench/gpu_check.sh) */
static void digest(const char *what, const void *p, size_t bytes) {
    const char *path = getenv("GK_DIGEST");
    if (!path || !*path) return;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < bytes; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "GK_DIGEST=%s: cannot open it for appending\n", path);
        exit(1);
    }
    fprintf(f, "%s %016llx\n", what, (unsigned long long)h);
    fclose(f);
}

int gk_check(const char *what, const gk_buf *b, double tol) {
    float *got = host_alloc(b->n);
    cuda_kernels_to_host(got, b->d, b->n * sizeof(float));
    digest(what, got, b->n * sizeof(float));
    double diff = 0.0, scale = 0.0;
    size_t worst = 0, nans = 0;
    for (size_t i = 0; i < b->n; i++) {
        double g = got[i], w = b->h[i], d = fabs(g - w);
        if (isnan(g) != isnan(w)) nans++;
        if (isnan(w)) continue;
        if (fabs(w) > scale) scale = fabs(w);
        if (d > diff) {
            diff = d;
            worst = i;
        }
    }
    double err = nans ? INFINITY : (scale > 0 ? diff / scale : diff);
    int bad = !(err < tol);
    printf("%s %-34s rel err %.2e (tol %.0e, n %zu)", bad ? "FAIL" : "ok  ", what, err, tol,
           b->n);
    if (nans) printf(", %zu NaN mismatches", nans);
    if (bad && b->n) printf(", worst [%zu] gpu %.9g cpu %.9g", worst, got[worst], b->h[worst]);
    printf("\n");
    kernels_free(got);
    return bad;
}

int gk_check_scalar(const char *what, double got, double want, double tol) {
    digest(what, &got, sizeof got);
    double err = fabs(got - want) / (fabs(want) > 0 ? fabs(want) : 1.0);
    int bad = !(err < tol);
    printf("%s %-34s rel err %.2e (tol %.0e) gpu %.9g cpu %.9g\n", bad ? "FAIL" : "ok  ", what,
           err, tol, got, want);
    return bad;
}
