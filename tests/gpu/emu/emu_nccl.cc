/* emu_nccl.cc: NCCL over MPI (cuda_emu_nccl.h says what is modelled).
 *
 * A collective is an operation in its stream (emu_internal.h): when the stream reaches it,
 * the device range is copied into a host staging buffer (with the device region open for
 * just that copy), MPI's non-blocking collective starts on the staging buffer, and every
 * later look at the runtime (an event query, ncclCommGetAsyncError, a synchronize) tests
 * it; when MPI is done the result is copied back and the stream goes on. So the host never
 * waits inside an NCCL call, the range stays PROT_NONE while the collective is in flight,
 * and a collective that never completes (a dead peer, DTRAIN_EMU_NCCL_HANG_AT) leaves its
 * stream, and whatever waits on it, pending: what dist/nccl's timeout must catch. */
/* the C API only: the deprecated C++ bindings would need their own library */
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "cuda_emu_nccl.h"
#include "emu_internal.h"

typedef std::lock_guard<std::recursive_mutex> guard;

namespace {
struct comm_state {
    MPI_Comm mpi = MPI_COMM_NULL;
    int rank = 0, nranks = 0;
    bool blocking = true;
    bool aborted = false, finalizing = false;
    ncclResult_t async = ncclSuccess; /* the asynchronous error, once one happened */
    int in_progress_polls = 0;        /* polls that still answer ncclInProgress */
    int pending = 0;                  /* collectives enqueued, not finished */
    std::string last_error;
};
} // namespace

struct emu_nccl_comm {
    std::shared_ptr<comm_state> st;
};

static std::string g_last_error; /* for failures without a communicator */
static long g_collectives;       /* collectives issued by this process */
static int g_group_depth;

static ncclResult_t set_error(comm_state *c, ncclResult_t rc, const std::string &msg) {
    if (c) c->last_error = msg;
    g_last_error = msg;
    emu_warn("nccl: %s", msg.c_str());
    return rc;
}

static size_t type_size(ncclDataType_t t) {
    return t == ncclFloat64 ? 8 : t == ncclFloat32 || t == ncclInt32 ? 4 : 0;
}

static MPI_Datatype mpi_type(ncclDataType_t t) {
    return t == ncclFloat64 ? MPI_DOUBLE : t == ncclFloat32 ? MPI_FLOAT : MPI_INT;
}

static MPI_Op mpi_op(ncclRedOp_t op) {
    return op == ncclMax ? MPI_MAX : op == ncclMin ? MPI_MIN : op == ncclProd ? MPI_PROD : MPI_SUM;
}

/* -1 when unset, else a positive integer from the environment */
static long env_count(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0) emu_die("%s='%s': expected a non-negative integer", name, s);
    return v;
}

static bool switch_hits(const char *name, long index) {
    long at = env_count(name);
    if (at < 0 || at != index) return false;
    long only = env_count("DTRAIN_EMU_NCCL_RANK");
    int world_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    return only < 0 || only == world_rank;
}

/* ---- the collective as a stream operation ------------------------------------------------- */

namespace {
enum coll_kind { ALLREDUCE, BROADCAST };

struct coll_op : emu_op {
    std::shared_ptr<comm_state> c;
    coll_kind kind;
    const void *send;
    void *recv;
    size_t count;
    ncclDataType_t type;
    ncclRedOp_t op;
    int root;
    long index;
    bool hang = false, fail = false, started = false;
    std::vector<char> staging;
    MPI_Request req = MPI_REQUEST_NULL;

    size_t bytes() const { return count * type_size(type); }

    /* ncclAvg on floating types: each rank's contribution times 1/nranks, then the sum */
    template <class T> void prescale() {
        T s = (T)1 / (T)c->nranks;
        T *x = (T *)staging.data();
        for (size_t i = 0; i < count; i++) x[i] *= s;
    }

    void start() {
        staging.resize(bytes());
        bool have_input = kind == ALLREDUCE || c->rank == root;
        if (have_input) {
            emu_access open;
            memcpy(staging.data(), send, bytes());
        }
        if (kind == ALLREDUCE && op == ncclAvg) {
            if (type == ncclFloat32) prescale<float>();
            else prescale<double>();
        }
        int rc = kind == ALLREDUCE
                     ? MPI_Iallreduce(MPI_IN_PLACE, staging.data(), (int)count, mpi_type(type),
                                      mpi_op(op), c->mpi, &req)
                     : MPI_Ibcast(staging.data(), (int)count, mpi_type(type), root, c->mpi, &req);
        if (rc != MPI_SUCCESS) {
            c->async = set_error(c.get(), ncclSystemError, "collective " +
                                 std::to_string(index) + ": MPI could not start it");
            req = MPI_REQUEST_NULL;
        }
        started = true;
    }

    bool step() override {
        if (c->aborted) return true; /* ncclCommAbort ends its kernels */
        if (hang) return false;
        if (fail) {
            if (c->async == ncclSuccess)
                c->async = set_error(c.get(), ncclRemoteError,
                                     "collective " + std::to_string(index) +
                                         " failed (DTRAIN_EMU_NCCL_FAIL_AT)");
            return false;
        }
        if (!started) start();
        if (req == MPI_REQUEST_NULL) return true; /* failed to start: the error is set */
        int flag = 0;
        if (MPI_Test(&req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            c->async = set_error(c.get(), ncclSystemError,
                                 "collective " + std::to_string(index) + ": MPI reported an error");
            return true;
        }
        if (!flag) return false;
        emu_access open;
        memcpy(recv, staging.data(), bytes());
        return true;
    }

    ~coll_op() override {
        c->pending--;
        /* an aborted collective MPI still works on keeps its buffer: MPI may write it later */
        if (req != MPI_REQUEST_NULL) {
            std::vector<char> *keep = new (std::nothrow) std::vector<char>;
            if (keep) keep->swap(staging);
        }
    }
};

struct queued {
    cudaStream_t stream;
    coll_op *op;
};
} // namespace

static std::vector<queued> g_group; /* collectives of the open group, in call order */

/* ---- communicators ------------------------------------------------------------------------- */

extern "C" ncclResult_t ncclGetVersion(int *version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

extern "C" ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    if (!id) return ncclInvalidArgument;
    memset(id, 0, sizeof *id);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    snprintf(id->internal, sizeof id->internal, "dtrain-emu-nccl %ld %ld.%09ld", (long)getpid(),
             (long)t.tv_sec, t.tv_nsec);
    return ncclSuccess;
}

static int id_color(const ncclUniqueId &id) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof id.internal; i++) h = (h ^ (unsigned char)id.internal[i]) * 16777619u;
    return (int)(h & 0x7fffffff);
}

extern "C" ncclResult_t ncclCommInitRankConfig(ncclComm_t *out, int nranks, ncclUniqueId id,
                                               int rank, ncclConfig_t *config) {
    guard lk(emu_lock());
    if (!out || nranks <= 0 || rank < 0 || rank >= nranks)
        return set_error(nullptr, ncclInvalidArgument, "ncclCommInitRank: bad nranks or rank");
    *out = nullptr;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return set_error(nullptr, ncclSystemError,
                         "ncclCommInitRank: the emulated NCCL runs over MPI: call MPI_Init first");
    auto st = std::make_shared<comm_state>();
    /* every rank of MPI_COMM_WORLD splits; those with the same id end up together, ordered
     * by their NCCL rank */
    if (MPI_Comm_split(MPI_COMM_WORLD, id_color(id), rank, &st->mpi) != MPI_SUCCESS)
        return set_error(nullptr, ncclSystemError, "ncclCommInitRank: MPI_Comm_split failed");
    MPI_Comm_set_errhandler(st->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_size(st->mpi, &st->nranks);
    MPI_Comm_rank(st->mpi, &st->rank);
    if (st->nranks != nranks) {
        MPI_Comm_free(&st->mpi);
        return set_error(nullptr, ncclInvalidArgument,
                         "ncclCommInitRank: " + std::to_string(st->nranks) +
                             " ranks passed this id, but nranks is " + std::to_string(nranks));
    }
    st->blocking = !config || config->blocking != 0;
    emu_nccl_comm *c = new (std::nothrow) emu_nccl_comm;
    if (!c) {
        MPI_Comm_free(&st->mpi);
        return ncclSystemError;
    }
    c->st = st;
    *out = c;
    if (st->blocking) return ncclSuccess;
    st->in_progress_polls = 1; /* "still connecting": the caller polls */
    return ncclInProgress;
}

extern "C" ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
    return ncclCommInitRankConfig(out, nranks, id, rank, nullptr);
}

extern "C" ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error) {
    guard lk(emu_lock());
    if (!comm || !async_error) return ncclInvalidArgument;
    emu_progress(); /* drives MPI */
    comm_state *c = comm->st.get();
    if (c->async != ncclSuccess) *async_error = c->async;
    else if (c->in_progress_polls > 0) {
        c->in_progress_polls--;
        *async_error = ncclInProgress;
    } else if (c->finalizing && c->pending > 0) *async_error = ncclInProgress;
    else *async_error = ncclSuccess;
    return ncclSuccess;
}

extern "C" ncclResult_t ncclCommFinalize(ncclComm_t comm) {
    guard lk(emu_lock());
    if (!comm) return ncclInvalidArgument;
    comm_state *c = comm->st.get();
    c->finalizing = true;
    if (!c->blocking) return ncclInProgress;
    while (c->pending > 0 && c->async == ncclSuccess) {
        if (!emu_progress()) emu_pause();
    }
    return c->async;
}

extern "C" ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    guard lk(emu_lock());
    if (!comm) return ncclInvalidArgument;
    if (comm->st->mpi != MPI_COMM_NULL) MPI_Comm_free(&comm->st->mpi);
    delete comm;
    return ncclSuccess;
}

/* Ends the communicator's pending collectives (their streams go on); MPI may still hold
 * a started one, which MPI_Comm_free allows. */
extern "C" ncclResult_t ncclCommAbort(ncclComm_t comm) {
    guard lk(emu_lock());
    if (!comm) return ncclSuccess;
    comm->st->aborted = true;
    emu_progress();
    return ncclCommDestroy(comm);
}

extern "C" ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
    if (!comm || !count) return ncclInvalidArgument;
    *count = comm->st->nranks;
    return ncclSuccess;
}

extern "C" ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = comm->st->rank;
    return ncclSuccess;
}

extern "C" const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (emulated)";
    case ncclSystemError: return "unhandled system error (emulated)";
    case ncclInternalError: return "internal error (emulated)";
    case ncclInvalidArgument: return "invalid argument (emulated)";
    case ncclInvalidUsage: return "invalid usage (emulated)";
    case ncclRemoteError: return "remote process exited or there was a network error (emulated)";
    case ncclInProgress: return "NCCL operation in progress (emulated)";
    }
    return "unknown result code (emulated)";
}

extern "C" const char *ncclGetLastError(ncclComm_t comm) {
    static thread_local std::string copy;
    guard lk(emu_lock());
    copy = comm && !comm->st->last_error.empty() ? comm->st->last_error : g_last_error;
    return copy.c_str();
}

/* ---- collectives ------------------------------------------------------------------------- */

static ncclResult_t issue(ncclComm_t comm, cudaStream_t stream, coll_op *op) {
    comm_state *c = comm->st.get();
    c->pending++;
    if (g_group_depth > 0) {
        g_group.push_back({stream, op});
        return ncclSuccess;
    }
    emu_enqueue(stream, op);
    if (c->blocking) return ncclSuccess;
    c->in_progress_polls = 1;
    return ncclInProgress;
}

static ncclResult_t check_buffer(comm_state *c, const char *call, const char *name,
                                 const void *p, size_t bytes) {
    if (emu_device_range(p, bytes)) return ncclSuccess;
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s %p + %zu bytes is not inside one live device allocation%s",
             call, name, p, bytes, emu_in_region(p) ? "" : " (a host pointer)");
    return set_error(c, ncclInvalidArgument, msg);
}

static ncclResult_t collective(const char *call, coll_kind kind, const void *send, void *recv,
                               size_t count, ncclDataType_t type, ncclRedOp_t op, int root,
                               ncclComm_t comm, cudaStream_t stream) {
    guard lk(emu_lock());
    if (!comm) return set_error(nullptr, ncclInvalidArgument, std::string(call) + ": no communicator");
    comm_state *c = comm->st.get();
    if (c->aborted || c->async != ncclSuccess) return c->async != ncclSuccess ? c->async : ncclInvalidUsage;
    if (!type_size(type) || count > 0x7fffffff || (kind == BROADCAST && (root < 0 || root >= c->nranks)))
        return set_error(c, ncclInvalidArgument, std::string(call) + ": unsupported type, count or root");
    if (op == ncclAvg && type == ncclInt32)
        return set_error(c, ncclInvalidArgument, std::string(call) + ": ncclAvg on int32 is not emulated");
    size_t bytes = count * type_size(type);
    if (!count) return ncclSuccess;
    bool needs_send = kind == ALLREDUCE || c->rank == root;
    ncclResult_t rc = needs_send ? check_buffer(c, call, "sendbuff", send, bytes) : ncclSuccess;
    if (rc == ncclSuccess) rc = check_buffer(c, call, "recvbuff", recv, bytes);
    if (rc != ncclSuccess) return rc;
    coll_op *o = new (std::nothrow) coll_op;
    if (!o) return set_error(c, ncclSystemError, std::string(call) + ": out of host memory");
    o->c = comm->st;
    o->kind = kind;
    o->send = send;
    o->recv = recv;
    o->count = count;
    o->type = type;
    o->op = op;
    o->root = root;
    o->index = ++g_collectives;
    o->hang = switch_hits("DTRAIN_EMU_NCCL_HANG_AT", o->index);
    o->fail = switch_hits("DTRAIN_EMU_NCCL_FAIL_AT", o->index);
    return issue(comm, stream, o);
}

extern "C" ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                      ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                      cudaStream_t stream) {
    return collective("ncclAllReduce", ALLREDUCE, sendbuff, recvbuff, count, datatype, op, 0,
                      comm, stream);
}

extern "C" ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                                      ncclDataType_t datatype, int root, ncclComm_t comm,
                                      cudaStream_t stream) {
    return collective("ncclBroadcast", BROADCAST, sendbuff, recvbuff, count, datatype, ncclSum,
                      root, comm, stream);
}

extern "C" ncclResult_t ncclGroupStart(void) {
    guard lk(emu_lock());
    g_group_depth++;
    return ncclSuccess;
}

/* the group's collectives go to their streams together, in call order */
extern "C" ncclResult_t ncclGroupEnd(void) {
    guard lk(emu_lock());
    if (g_group_depth <= 0)
        return set_error(nullptr, ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
    if (--g_group_depth > 0) return ncclSuccess;
    std::vector<queued> ops;
    ops.swap(g_group);
    bool in_progress = false;
    for (queued &q : ops) {
        std::shared_ptr<comm_state> c = q.op->c; /* the op may be done and gone below */
        emu_enqueue(q.stream, q.op);
        if (!c->blocking) {
            c->in_progress_polls = 1;
            in_progress = true;
        }
    }
    return in_progress ? ncclInProgress : ncclSuccess;
}
