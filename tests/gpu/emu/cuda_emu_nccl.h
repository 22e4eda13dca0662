/* cuda_emu_nccl.h: NCCL as the emulator provides it, implemented over MPI (emu_nccl.cc).
 * The calls dist/nccl uses and a few more, with NCCL's names and semantics:
 * - ncclGetUniqueId / ncclCommInitRank(Config): a communicator over the ranks of
 *   MPI_COMM_WORLD that pass the same id (MPI must be initialised; every rank of
 *   MPI_COMM_WORLD takes part in the creation, as MPI_Comm_split needs). With
 *   config.blocking = 0 the creation and each collective answer ncclInProgress, and
 *   ncclCommGetAsyncError reports ncclInProgress once before success, so callers' polling
 *   loops run;
 * - ncclAllReduce (ncclSum, ncclAvg: each contribution is scaled by 1/nranks before the
 *   sum, as NCCL does for floating types; ncclMax, ncclMin), ncclBroadcast, on float32,
 *   float64 and int32, enqueued on a stream and carried out by MPI's non-blocking
 *   collectives while the stream waits; the device range stays inaccessible throughout;
 * - ncclGroupStart/End (collectives of a group are issued together at the end);
 * - ncclCommGetAsyncError, ncclGetLastError, ncclCommFinalize/Destroy/Abort.
 * Switches for testing the failure paths (environment, read at each collective):
 *   DTRAIN_EMU_NCCL_HANG_AT=k   the k-th collective of the process (from 1) never
 *                               completes, as with a dead peer;
 *   DTRAIN_EMU_NCCL_FAIL_AT=k   the k-th collective sets the asynchronous error
 *                               ncclRemoteError and never completes;
 *   DTRAIN_EMU_NCCL_RANK=r      only on world rank r (default: every rank). */
#ifndef DTRAIN_CUDA_EMU_NCCL_H
#define DTRAIN_CUDA_EMU_NCCL_H

#include <stddef.h>

#include "cuda_emu_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_PATCH 9
#define NCCL_VERSION(X, Y, Z) ((X) * 10000 + (Y) * 100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)
#define NCCL_UNIQUE_ID_BYTES 128

typedef struct emu_nccl_comm *ncclComm_t;
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7
} ncclResult_t;

typedef enum {
    ncclInt32 = 2,
    ncclInt = 2,
    ncclFloat32 = 7,
    ncclFloat = 7,
    ncclFloat64 = 8,
    ncclDouble = 8
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

typedef struct {
    size_t size;
    unsigned magic;
    unsigned version;
    int blocking;
} ncclConfig_t;

#define NCCL_CONFIG_INITIALIZER \
    { sizeof(ncclConfig_t), 0xcafebeefu, NCCL_VERSION_CODE, 1 }

ncclResult_t ncclGetVersion(int *version);
ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t *config);
ncclResult_t ncclCommFinalize(ncclComm_t comm);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error);
ncclResult_t ncclCommCount(const ncclComm_t comm, int *count);
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank);
const char *ncclGetErrorString(ncclResult_t result);
const char *ncclGetLastError(ncclComm_t comm);

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclGroupStart(void);
ncclResult_t ncclGroupEnd(void);

#ifdef __cplusplus
}
#endif

#endif
