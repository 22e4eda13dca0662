#include "comm.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MPI is process-wide: several communicators (a tool that loads two models) share one
 * MPI_Init, and the last comm_finalize ends it. */
static int g_comms;

struct comm {
    int rank, world;
    int local_rank, local_size, nodes;
    MPI_Comm node;
};

/* Every MPI call goes through this: a failure names the call and the rank, then aborts. */
#define MPI_CHECK(c, call)                                                             \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ != MPI_SUCCESS) {                                                      \
            char msg_[MPI_MAX_ERROR_STRING];                                           \
            int len_ = 0;                                                              \
            MPI_Error_string(rc_, msg_, &len_);                                        \
            comm_abort((c), 3, "%s failed: %s", #call, msg_);                          \
        }                                                                              \
    } while (0)

comm *comm_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "dtrain: MPI_Init failed\n");
        exit(3);
    }
    g_comms++;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    comm *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "dtrain: out of memory allocating the communicator\n");
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    MPI_CHECK(c, MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank,
                                     MPI_INFO_NULL, &c->node));
    MPI_Comm_rank(c->node, &c->local_rank);
    MPI_Comm_size(c->node, &c->local_size);
    int leader = c->local_rank == 0;
    MPI_CHECK(c, MPI_Allreduce(&leader, &c->nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    return c;
}

void comm_finalize(comm *c) {
    if (!c) return;
    MPI_Comm_free(&c->node);
    free(c);
    if (--g_comms == 0) MPI_Finalize();
}

int comm_rank(const comm *c) { return c->rank; }
int comm_world(const comm *c) { return c->world; }
int comm_local_rank(const comm *c) { return c->local_rank; }
int comm_local_size(const comm *c) { return c->local_size; }
int comm_nodes(const comm *c) { return c->nodes; }

/* MPI counts are int: large buffers go in pieces of at most 1 Gi elements. */
#define CHUNK ((size_t)1 << 30)

void comm_allreduce_mean_f32(comm *c, float *buf, size_t n) {
    if (c->world == 1) return;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM,
                                   MPI_COMM_WORLD));
    }
    float inv = 1.0f / (float)c->world;
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
}

void comm_allreduce_sum_f64(comm *c, double *buf, size_t n) {
    if (c->world == 1) return;
    MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}

void comm_allreduce_sum_i64(comm *c, int64_t *buf, size_t n) {
    if (c->world == 1) return;
    MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
}

void comm_allreduce_max_i32(comm *c, int32_t *buf, size_t n) {
    if (c->world == 1) return;
    MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD));
}

void comm_bcast(comm *c, void *buf, size_t bytes, int root) {
    if (c->world == 1) return;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        int cnt = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        MPI_CHECK(c, MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD));
    }
}

void comm_allgather(comm *c, const void *in, void *out, size_t bytes) {
    if (c->world == 1) {
        memcpy(out, in, bytes);
        return;
    }
    MPI_CHECK(c, MPI_Allgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE,
                               MPI_COMM_WORLD));
}

void comm_barrier(comm *c) {
    if (c->world == 1) return;
    MPI_CHECK(c, MPI_Barrier(MPI_COMM_WORLD));
}

void comm_abort(comm *c, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c)
        fprintf(stderr, "dtrain: rank %d/%d: %s\n", c->rank, c->world, msg);
    else
        fprintf(stderr, "dtrain: %s\n", msg);
    fflush(stderr);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized && c && c->world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
