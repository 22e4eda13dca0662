/* comm_nccl.c: see comm_nccl.h. */
#include "comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BUCKET_FLOATS ((size_t)25 << 20 >> 2) /* 25 MiB of floats */
#define DEFAULT_TIMEOUT_S 600.0
#define POLL_NS 50000L /* between two looks at a pending operation */

struct comm_nccl {
    comm *mpi;
    ncclComm_t nccl;
    cudaStream_t stream;   /* the reductions' own stream */
    cudaEvent_t ev_after;  /* "the caller's work so far", for the reductions to wait on */
    cudaEvent_t ev_done;   /* "the reductions so far", for the caller to wait on */
    int device;
    size_t bucket;
    double timeout_s;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pause_briefly(void) {
    struct timespec t = {0, POLL_NS};
    nanosleep(&t, NULL);
}

/* Aborts the NCCL communicator first: a rank that dies without it can leave its peers
 * spinning inside a collective. Then the job, through comm_abort (rank, call, message). */
static _Noreturn void fail(comm_nccl *c, const char *call, const char *msg) {
    const char *detail = c->nccl ? ncclGetLastError(c->nccl) : NULL;
    char last[512] = "";
    if (detail && *detail) snprintf(last, sizeof last, " (%s)", detail);
    if (c->nccl) ncclCommAbort(c->nccl);
    c->nccl = NULL;
    comm_abort(c->mpi, 4, "%s failed: %s%s", call, msg, last);
}

#define CUDA_OK(c, call)                                                    \
    do {                                                                    \
        cudaError_t e_ = (call);                                            \
        if (e_ != cudaSuccess) fail((c), #call, cudaGetErrorString(e_));    \
    } while (0)

/* A non-blocking communicator may answer ncclInProgress: the call goes on in the
 * background and its outcome shows in the asynchronous error state. */
static void nccl_settle(comm_nccl *c, const char *call, ncclResult_t rc) {
    double t0 = now_s();
    while (rc == ncclInProgress) {
        if (now_s() - t0 > c->timeout_s) {
            char msg[128];
            snprintf(msg, sizeof msg, "not finished after %.0f s (DTRAIN_NCCL_TIMEOUT)",
                     c->timeout_s);
            fail(c, call, msg);
        }
        pause_briefly();
        ncclResult_t q = ncclCommGetAsyncError(c->nccl, &rc);
        if (q != ncclSuccess) fail(c, "ncclCommGetAsyncError", ncclGetErrorString(q));
    }
    if (rc != ncclSuccess) fail(c, call, ncclGetErrorString(rc));
}

#define NCCL_OK(c, call) nccl_settle((c), #call, (call))

/* ---- placement ---------------------------------------------------------------------- */

/* comm_nccl_local_rank and comm_nccl_pick_device are in dist/gpu_place.c: pure logic, linked
 * also where NCCL is not (the trainer picks the GPU of --device cuda with them). */

int comm_nccl_built(void) { return 1; }

static double timeout_from_env(comm *mpi) {
    const char *s = getenv("DTRAIN_NCCL_TIMEOUT");
    if (!s || !*s) return DEFAULT_TIMEOUT_S;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !(v > 0))
        comm_abort(mpi, 2, "DTRAIN_NCCL_TIMEOUT='%s': expected a number of seconds > 0", s);
    return v;
}

/* ---- life cycle ----------------------------------------------------------------------- */

static void bind_device(comm_nccl *c, int device) {
    int visible = 0;
    cudaError_t e = cudaGetDeviceCount(&visible);
    if (e != cudaSuccess)
        comm_abort(c->mpi, 4, "cudaGetDeviceCount failed: %s (no driver or no GPU here?)",
                   cudaGetErrorString(e));
    char why[256];
    c->device = comm_nccl_pick_device(device, comm_nccl_local_rank(c->mpi), visible, why,
                                      sizeof why);
    if (c->device < 0) comm_abort(c->mpi, 4, "choosing a GPU: %s", why);
    CUDA_OK(c, cudaSetDevice(c->device));
    CUDA_OK(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_OK(c, cudaEventCreateWithFlags(&c->ev_after, cudaEventDisableTiming));
    CUDA_OK(c, cudaEventCreateWithFlags(&c->ev_done, cudaEventDisableTiming));
}

comm_nccl *comm_nccl_init(comm *mpi, int device) {
    comm_nccl *c = calloc(1, sizeof *c);
    if (!c) comm_abort(mpi, 4, "out of memory allocating the NCCL communicator");
    c->mpi = mpi;
    c->bucket = DEFAULT_BUCKET_FLOATS;
    c->timeout_s = timeout_from_env(mpi);
    bind_device(c, device);
    /* rank 0 makes the id, MPI carries it; a failure on rank 0 aborts every rank */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (comm_rank(mpi) == 0) {
        ncclResult_t rc = ncclGetUniqueId(&id);
        if (rc != ncclSuccess) fail(c, "ncclGetUniqueId", ncclGetErrorString(rc));
    }
    comm_bcast(mpi, &id, sizeof id, 0);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* so that every wait below can time out instead of hanging */
    NCCL_OK(c, ncclCommInitRankConfig(&c->nccl, comm_world(mpi), id, comm_rank(mpi), &cfg));
    return c;
}

void comm_nccl_finalize(comm_nccl *c) {
    if (!c) return;
    comm_nccl_wait(c);
    NCCL_OK(c, ncclCommFinalize(c->nccl));
    NCCL_OK(c, ncclCommDestroy(c->nccl));
    c->nccl = NULL;
    CUDA_OK(c, cudaEventDestroy(c->ev_after));
    CUDA_OK(c, cudaEventDestroy(c->ev_done));
    CUDA_OK(c, cudaStreamDestroy(c->stream));
    free(c);
}

int comm_nccl_device(const comm_nccl *c) { return c->device; }

void comm_nccl_set_bucket_floats(comm_nccl *c, size_t floats) {
    c->bucket = floats ? floats : DEFAULT_BUCKET_FLOATS;
}

/* ---- reductions ----------------------------------------------------------------------- */

void comm_nccl_allreduce_mean_f32_async(comm_nccl *c, float *buf, size_t n, void *after) {
    if (!n) return;
    CUDA_OK(c, cudaEventRecord(c->ev_after, (cudaStream_t)after));
    CUDA_OK(c, cudaStreamWaitEvent(c->stream, c->ev_after, 0));
    for (size_t off = 0; off < n; off += c->bucket) {
        size_t len = n - off < c->bucket ? n - off : c->bucket;
        /* ncclAvg scales each contribution by 1/world before the sum: for world 1 and 2
         * that equals MPI's sum-then-scale exactly (scaling by a power of two is exact) */
        NCCL_OK(c, ncclAllReduce(buf + off, buf + off, len, ncclFloat32, ncclAvg, c->nccl,
                                 c->stream));
    }
}

void comm_nccl_join(comm_nccl *c, void *stream) {
    CUDA_OK(c, cudaEventRecord(c->ev_done, c->stream));
    CUDA_OK(c, cudaStreamWaitEvent((cudaStream_t)stream, c->ev_done, 0));
}

/* Polls instead of cudaStreamSynchronize, which would wait forever for a dead peer. */
void comm_nccl_wait(comm_nccl *c) {
    CUDA_OK(c, cudaEventRecord(c->ev_done, c->stream));
    double t0 = now_s();
    for (;;) {
        cudaError_t e = cudaEventQuery(c->ev_done);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) fail(c, "cudaEventQuery", cudaGetErrorString(e));
        ncclResult_t st = ncclSuccess, q = ncclCommGetAsyncError(c->nccl, &st);
        if (q != ncclSuccess) fail(c, "ncclCommGetAsyncError", ncclGetErrorString(q));
        if (st != ncclSuccess && st != ncclInProgress)
            fail(c, "ncclAllReduce", ncclGetErrorString(st));
        if (now_s() - t0 > c->timeout_s) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "not finished after %.0f s (a rank died or hangs? DTRAIN_NCCL_TIMEOUT)",
                     c->timeout_s);
            fail(c, "waiting for the all-reduce", msg);
        }
        pause_briefly();
    }
}

void comm_nccl_allreduce_mean_f32(comm_nccl *c, float *buf, size_t n, void *after) {
    comm_nccl_allreduce_mean_f32_async(c, buf, n, after);
    comm_nccl_wait(c);
}
