/* The trainer's NCCL gradient path (core/grad_reduce.c + grad_reduce_nccl.c over
 * dist/nccl) on the emulator, under mpirun: a stand-in backward pass writes each rank's
 * gradients into device memory on a compute stream, tensor by tensor in reverse order, and
 * reports them with model_grads_ready as a job's backward does; the buckets launch as they
 * become final, grad_reduce_finish joins them, and the arena must equal MPI's mean of the
 * same host values to the bit (1 and 2 ranks: ncclAvg = sum-then-scale exactly there), over
 * three steps with tensor 0 left unreported (finish launches its bucket).
 *   mpirun -np W gpu_emu_grad_reduce [BUCKET_FLOATS]   (default 2048: 4 buckets, the first launched before
 *   the backward has written the rest, the last only by finish) */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "grad_reduce.h"
#include "nccl/comm_nccl.h"
#include "params.h"

#define CHECK(call)                                                                      \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_));           \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* the rank's gradients of a step: values in [-2, 2), zero in the padding */
static void fill(const model *m, float *g, int rank, int step) {
    memset(g, 0, m->nfloats * sizeof *g);
    uint64_t s = 0x5eedu + (uint64_t)rank * 7919u + (uint64_t)step * 104729u;
    for (int i = 0; i < m->ntensors; i++)
        for (size_t k = 0; k < m->tensors[i].numel; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            g[m->tensors[i].offset + k] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
}

int main(int argc, char **argv) {
    comm *c = comm_init(&argc, &argv);
    int rank = comm_rank(c), world = comm_world(c);
    size_t bucket = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    model m = {0};
    const int sizes[] = {1000, 37, 4096, 5, 20000, 300, 3000};
    char name[16];
    for (int i = 0; i < (int)(sizeof sizes / sizeof sizes[0]); i++) {
        snprintf(name, sizeof name, "t%d", i);
        model_add(&m, name, 1, &sizes[i], 1);
    }
    size_t bytes = m.nfloats * sizeof(float);
    comm_nccl *nc = comm_nccl_init(c, -1);
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK(cudaMalloc((void **)&m.grads, bytes));
    float *want = malloc(bytes), *got = malloc(bytes);
    if (!want || !got) return 1;
    grad_reducer *r = grad_reduce_nccl(nc, &m, stream, bucket);
    int bad = 0;
    for (int step = 0; step < 3 && !bad; step++) {
        fill(&m, want, rank, step);
        CHECK(cudaMemsetAsync(m.grads, 0, bytes, stream));
        grad_reduce_arm(r);
        /* backward: the last tensor first; tensor 0 is never reported */
        for (int i = m.ntensors - 1; i >= 0; i--) {
            const tensor_info *t = &m.tensors[i];
            CHECK(cudaMemcpyAsync(m.grads + t->offset, want + t->offset, t->numel * sizeof(float),
                                  cudaMemcpyHostToDevice, stream));
            if (i > 0) model_grads_ready(&m, i);
        }
        grad_reduce_finish(r);
        CHECK(cudaMemcpyAsync(got, m.grads, bytes, cudaMemcpyDeviceToHost, stream));
        CHECK(cudaStreamSynchronize(stream));
        comm_allreduce_mean_f32(c, want, m.nfloats);
        for (size_t k = 0; k < m.nfloats && !bad; k++)
            if (memcmp(&got[k], &want[k], sizeof(float)) != 0) {
                fprintf(stderr, "rank %d step %d: float %zu is %.9g, MPI's mean %.9g\n", rank, step, k, got[k],
                        want[k]);
                bad = 1;
            }
    }
    int32_t any = bad;
    comm_allreduce_max_i32(c, &any, 1);
    if (rank == 0)
        printf("%s: %s, %zu floats, %d rank(s), 3 steps: %s\n", any ? "FAIL" : "ok", grad_reduce_describe(r),
               m.nfloats, world, any ? "differs from MPI's mean" : "bitwise equal to MPI's mean");
    grad_reduce_free(r);
    CHECK(cudaFree(m.grads));
    CHECK(cudaStreamDestroy(stream));
    comm_nccl_finalize(nc);
    m.grads = NULL;
    free(m.tensors);
    free(want);
    free(got);
    comm_finalize(c);
    return any ? 1 : 0;
}
