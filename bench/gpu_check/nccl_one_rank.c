/* nccl_one_rank.c: NCCL on one GPU without MPI, for bench/gpu_check.sh: a one-rank
 * communicator (non-blocking, polled as dist/nccl does), ncclAvg and ncclSum all-reduces
 * and a broadcast of a buffer, each of which must leave it bit for bit unchanged with a
 * single rank. Exit 0 on success, 1 with the failing call on failure; a missing GPU is a
 * failure here (exit 1), not a skip. */
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N (1 << 20)

static int fail(const char *what, const char *why) {
    printf("FAIL nccl_one_rank: %s: %s\n", what, why);
    return 1;
}

/* waits for a non-blocking call as dist/nccl does, 60 s at most */
static ncclResult_t settle(ncclComm_t c, ncclResult_t rc) {
    for (int i = 0; rc == ncclInProgress && i < 600000; i++) {
        struct timespec t = {0, 100000};
        nanosleep(&t, NULL);
        if (ncclCommGetAsyncError(c, &rc) != ncclSuccess) return ncclInternalError;
    }
    return rc;
}

int main(void) {
    int v = 0, n = 0;
    ncclGetVersion(&v);
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1) return fail("cudaGetDeviceCount", cudaGetErrorString(e));
    printf("NCCL %d, %d GPU(s)\n", v, n);
    ncclUniqueId id;
    ncclResult_t rc = ncclGetUniqueId(&id);
    if (rc != ncclSuccess) return fail("ncclGetUniqueId", ncclGetErrorString(rc));
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t c = NULL;
    rc = ncclCommInitRankConfig(&c, 1, id, 0, &cfg);
    if (settle(c, rc) != ncclSuccess) return fail("ncclCommInitRankConfig", ncclGetLastError(c));
    float *h = malloc(N * sizeof *h), *back = malloc(N * sizeof *back), *d = NULL;
    if (!h || !back) return fail("malloc", "out of memory");
    for (int i = 0; i < N; i++) h[i] = (float)(i % 1000) * 0.37f - 100.0f;
    e = cudaMalloc((void **)&d, N * sizeof(float));
    if (e != cudaSuccess) return fail("cudaMalloc", cudaGetErrorString(e));
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    const char *names[] = {"ncclAllReduce(ncclAvg)", "ncclAllReduce(ncclSum)", "ncclBroadcast"};
    for (int k = 0; k < 3; k++) {
        cudaMemcpy(d, h, N * sizeof(float), cudaMemcpyHostToDevice);
        rc = k < 2 ? ncclAllReduce(d, d, N, ncclFloat32, k == 0 ? ncclAvg : ncclSum, c, s)
                   : ncclBroadcast(d, d, N, ncclFloat32, 0, c, s);
        if (settle(c, rc) != ncclSuccess) return fail(names[k], ncclGetLastError(c));
        e = cudaStreamSynchronize(s);
        if (e != cudaSuccess) return fail(names[k], cudaGetErrorString(e));
        cudaMemcpy(back, d, N * sizeof(float), cudaMemcpyDeviceToHost);
        if (memcmp(back, h, N * sizeof(float)))
            return fail(names[k], "one rank changed the buffer");
        printf("ok   %s on one rank, %d floats, bit for bit\n", names[k], N);
    }
    rc = ncclCommFinalize(c);
    if (settle(c, rc) != ncclSuccess) return fail("ncclCommFinalize", ncclGetLastError(c));
    ncclCommDestroy(c);
    cudaFree(d);
    cudaStreamDestroy(s);
    free(h);
    free(back);
    return 0;
}
