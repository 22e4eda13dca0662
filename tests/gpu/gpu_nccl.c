/* gpu_nccl.c: the NCCL communicator's mean all-reduce against the MPI communicator's, on
 * the same per-rank random buffer, through several buckets (the bucket size is set small).
 * Run under mpirun with one rank per GPU; exits 77 (skipped) without a usable GPU, or
 * when a node has fewer visible GPUs than ranks, and 0/1 for pass/fail on every rank.
 *
 * Tolerance: for 1 and 2 ranks NCCL's average equals MPI's sum-then-scale exactly (see
 * comm_nccl.c), so the check demands bitwise equality there; beyond that the two
 * libraries sum in different orders, and 1e-6 relative to the largest entry applies. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "nccl/comm_nccl.h"

#define N 1000003 /* odd, so the last bucket is partial */
#define BUCKET 65536

static float *random_buffer(int rank) {
    float *x = malloc(N * sizeof *x);
    if (!x) exit(1);
    uint64_t s = 0x1234u + (uint64_t)rank * 7919u;
    for (size_t i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    return x;
}

/* Every rank must reach the same verdict on skipping, or mpirun would mix exit codes. */
static int gpus_for_all(comm *c) {
    int n = 0;
    int ok = cudaGetDeviceCount(&n) == cudaSuccess && n >= comm_local_size(c);
    int32_t bad = !ok;
    comm_allreduce_max_i32(c, &bad, 1);
    return !bad;
}

int main(int argc, char **argv) {
    comm *c = comm_init(&argc, &argv);
    int rank = comm_rank(c), world = comm_world(c);
    if (!gpus_for_all(c)) {
        if (rank == 0) printf("SKIPPED: gpu_nccl: no usable GPU for every rank\n");
        comm_finalize(c);
        return 77;
    }
    comm_nccl *nc = comm_nccl_init(c, -1);
    comm_nccl_set_bucket_floats(nc, BUCKET);
    float *want = random_buffer(rank), *got = malloc(N * sizeof *got), *d = NULL;
    if (!got || cudaMalloc((void **)&d, N * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "rank %d: allocation failed\n", rank);
        return 1;
    }
    cudaMemcpy(d, want, N * sizeof(float), cudaMemcpyHostToDevice);
    comm_allreduce_mean_f32(c, want, N);
    comm_nccl_allreduce_mean_f32(nc, d, N, NULL);
    cudaMemcpy(got, d, N * sizeof(float), cudaMemcpyDeviceToHost);
    double diff = 0, scale = 0;
    size_t differ = 0;
    for (size_t i = 0; i < N; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e == 0)) differ++;
        if (!(e <= diff)) diff = e; /* NaN included */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    double err = diff / scale, tol = world <= 2 ? 0.0 : 1e-6;
    int bad = !(err <= tol);
    printf("%s rank %d/%d: nccl vs mpi mean all-reduce of %d floats in buckets of %d: rel err "
           "%.2e (tol %.0e), %zu elements differ\n",
           bad ? "FAIL" : "ok  ", rank, world, N, BUCKET, err, tol, differ);
    int32_t any = bad;
    comm_allreduce_max_i32(c, &any, 1);
    cudaFree(d);
    free(want);
    free(got);
    comm_nccl_finalize(nc);
    if (rank == 0) printf("%d passed, %d failed\n", any ? 0 : 1, any ? 1 : 0);
    comm_finalize(c);
    return any ? 1 : 0;
}
