/* sgemm_rate.c: the large-sgemm rate of dtrain's GEMM on this machine (our AVX-512 kernel,
 * or OpenBLAS where dtrain uses it), the ceiling that bench/bench_gpt.sh holds dtrain's
 * achieved GFLOP/s against.
 *
 *   bench_sgemm_rate [THREADS=1] [SIZE=2048] [REPEATS=5]
 *
 * Times C = A B on SIZE x SIZE float matrices through kc_sgemm_parallel on THREADS threads,
 * the way dtrain's linear layers run, and prints the best of REPEATS calls as
 * "sgemm GFLOP/s: X (threads N, GEMM)". The best, not the mean, because the benchmark
 * machines are shared: the best call is the one least disturbed. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#include "kernels.h"
#include "util.h" /* now_sec */

static int arg_int(int argc, char **argv, int i, int fallback) {
    if (argc <= i) return fallback;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v < 1 || v > 1 << 20) {
        fprintf(stderr, "bench_sgemm_rate: bad argument '%s' (want a positive integer)\n", argv[i]);
        exit(2);
    }
    return (int)v;
}

static float *matrix(size_t n, unsigned *state) {
    /* 64-byte alignment, as dtrain's arenas have, so the rate is the one its GEMMs can get */
    float *m = aligned_alloc(64, (n * n * sizeof(float) + 63) / 64 * 64);
    if (!m) {
        fprintf(stderr, "bench_sgemm_rate: out of memory\n");
        exit(1);
    }
    /* values in [-1, 1): denormals or overflow would measure something other than sgemm */
    for (size_t i = 0; i < n * n; i++) {
        *state = *state * 1664525u + 1013904223u;
        m[i] = (float)(*state >> 8) / (float)(1u << 23) - 1.0f;
    }
    return m;
}

int main(int argc, char **argv) {
    int threads = arg_int(argc, argv, 1, 1);
    int n = arg_int(argc, argv, 2, 2048);
    int repeats = arg_int(argc, argv, 3, 5);
    kernels_set_threads(threads);

    unsigned state = 12345;
    float *a = matrix((size_t)n, &state), *b = matrix((size_t)n, &state);
    float *c = matrix((size_t)n, &state);

    /* the first call pays for thread start-up and page faults on c: not part of the rate */
    kc_sgemm_parallel(0, 0, n, n, n, a, n, b, n, 0.0f, c, n, NULL);
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_sec();
        kc_sgemm_parallel(0, 0, n, n, n, a, n, b, n, 0.0f, c, n, NULL);
        double dt = now_sec() - t0;
        double rate = 2.0 * n * (double)n * n / dt * 1e-9;
        if (rate > best) best = rate;
    }
    printf("sgemm GFLOP/s: %.1f (threads %d, %s)\n", best, threads,
           kc_gemm_is_openblas() ? "OpenBLAS" : "dtrain's AVX-512 SGEMM");
    free(a);
    free(b);
    free(c);
    return 0;
}
