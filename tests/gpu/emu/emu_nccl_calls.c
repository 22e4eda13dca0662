/* emu_nccl_calls.c: the NCCL stand-in's calls that dist/nccl does not make, under mpirun
 * (any number of ranks): a group of two all-reduces (float32 sum, float64 max) issued
 * together, a broadcast from the last rank, a blocking communicator, and the
 * communicator's count and rank. Exit 0 when every rank got what MPI's rules say. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#define N 1000

static int g_bad;
#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "FAIL rank %d line %d: %s\n", rank, __LINE__, #c); \
            g_bad = 1;                                                        \
        }                                                                     \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t comm;
    CHECK(ncclCommInitRank(&comm, world, id, rank) == ncclSuccess);
    int n = -1, r = -1;
    CHECK(ncclCommCount(comm, &n) == ncclSuccess && n == world);
    CHECK(ncclCommUserRank(comm, &r) == ncclSuccess && r == rank);

    static float hf[N];
    static double hd[N];
    for (int i = 0; i < N; i++) {
        hf[i] = (float)(rank + 1) * (float)i;
        hd[i] = (double)((i + rank) % world);
    }
    float *df;
    double *dd;
    CHECK(cudaMalloc((void **)&df, sizeof hf) == cudaSuccess);
    CHECK(cudaMalloc((void **)&dd, sizeof hd) == cudaSuccess);
    cudaMemcpy(df, hf, sizeof hf, cudaMemcpyHostToDevice);
    cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
    float hb[10], *db;
    for (int i = 0; i < 10; i++) hb[i] = (float)(100 * rank + i);
    CHECK(cudaMalloc((void **)&db, sizeof hb) == cudaSuccess);
    cudaMemcpy(db, hb, sizeof hb, cudaMemcpyHostToDevice);
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    CHECK(ncclGroupStart() == ncclSuccess);
    CHECK(ncclAllReduce(df, df, N, ncclFloat32, ncclSum, comm, s) == ncclSuccess);
    CHECK(ncclAllReduce(dd, dd, N, ncclFloat64, ncclMax, comm, s) == ncclSuccess);
    CHECK(ncclGroupEnd() == ncclSuccess);
    CHECK(ncclBroadcast(db, db, 10, ncclFloat32, world - 1, comm, s) == ncclSuccess);
    /* a host buffer is refused with a message */
    CHECK(ncclAllReduce(hf, hf, N, ncclFloat32, ncclSum, comm, s) == ncclInvalidArgument);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);
    cudaMemcpy(hf, df, sizeof hf, cudaMemcpyDeviceToHost);
    cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost);
    cudaMemcpy(hb, db, sizeof hb, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 10; i++) CHECK(hb[i] == (float)(100 * (world - 1) + i));
    float ranks_sum = (float)(world * (world + 1) / 2);
    for (int i = 0; i < N; i++) {
        CHECK(hf[i] == ranks_sum * (float)i); /* small integers: exact in any order */
        CHECK(hd[i] == (double)(world - 1)); /* the ranks hold every residue mod world */
    }
    CHECK(ncclCommFinalize(comm) == ncclSuccess);
    CHECK(ncclCommDestroy(comm) == ncclSuccess);
    cudaFree(df);
    cudaFree(dd);
    cudaFree(db);
    cudaStreamDestroy(s);
    int any = g_bad;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) printf("%s: group all-reduce (sum, max), broadcast, %d rank(s)\n", any ? "FAIL" : "ok", world);
    MPI_Finalize();
    return any;
}
