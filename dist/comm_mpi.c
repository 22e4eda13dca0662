#include "comm.h"

#include <mpi.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MPI is process-wide: several communicators (a tool that loads two models) share one
 * MPI_Init, and the last comm_finalize ends it. */
static int g_comms;

/* Host names are cut to this length (with the NUL) in messages and the node list. */
#define HOST_LEN 64

struct comm {
    int rank, world;
    int local_rank, local_size, nodes;
    MPI_Comm node;
    MPI_Comm probe;       /* a private channel for the liveness probe after a timeout */
    char *hosts;          /* world * HOST_LEN: the host of every rank */
    char *node_list;      /* the distinct hosts, comma-separated, in rank order */
    double timeout_s;     /* deadline of the gradient all-reduce (0 = wait forever) */
    long grad_calls;      /* gradient all-reduces so far, their time and their size, */
    double grad_s;        /* reported at the end when DTRAIN_COMM_STATS is set */
    size_t grad_floats;
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

/* Every rank's host name, for the start-up line and for naming a peer that stops answering. */
static void gather_hosts(comm *c) {
    char name[MPI_MAX_PROCESSOR_NAME] = "", mine[HOST_LEN] = "";
    int len = 0;
    MPI_Get_processor_name(name, &len);
    snprintf(mine, sizeof mine, "%s", name);
    c->hosts = calloc((size_t)c->world, HOST_LEN);
    c->node_list = calloc(9, HOST_LEN + 1);
    if (!c->hosts || !c->node_list) comm_abort(c, 3, "out of memory for the host names of %d ranks", c->world);
    MPI_CHECK(c, MPI_Allgather(mine, HOST_LEN, MPI_CHAR, c->hosts, HOST_LEN, MPI_CHAR, MPI_COMM_WORLD));
    /* each host once, in rank order; a start-up line for hundreds of nodes names the first 8 */
    int listed = 0;
    for (int r = 0; r < c->world && listed <= 8; r++) {
        const char *h = c->hosts + (size_t)r * HOST_LEN;
        int seen = 0;
        for (int q = 0; q < r && !seen; q++) seen = strcmp(h, c->hosts + (size_t)q * HOST_LEN) == 0;
        if (seen) continue;
        if (listed++ == 8) {
            strcat(c->node_list, ",...");
            break;
        }
        if (c->node_list[0]) strcat(c->node_list, ",");
        strcat(c->node_list, h);
    }
}

/* MPI_Init reads argv up to the NULL at argv[argc] (Open MPI joins it into a string), which
 * an argument list built by a caller need not have (`dtrain sample gpt` appends its own
 * keys): it is given a terminated copy, kept until MPI_Finalize as MPI may keep argv
 * (volatile: a pointer only stored would be optimized away, and the copy called a leak).
 * (scripts/sanitize.sh found the read past the list.) */
static char **volatile g_mpi_argv;

comm *comm_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && argc && argv && *argv && *argc >= 0) {
        char **copy = calloc((size_t)*argc + 1, sizeof *copy);
        if (!copy) {
            fprintf(stderr, "dtrain: out of memory before MPI_Init\n");
            exit(3);
        }
        memcpy(copy, *argv, (size_t)*argc * sizeof *copy);
        *argv = g_mpi_argv = copy;
    }
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
    MPI_CHECK(c, MPI_Comm_dup(MPI_COMM_WORLD, &c->probe));
    gather_hosts(c);
    return c;
}

/* With DTRAIN_COMM_STATS set (bench/bench_multinode.sh), rank 0 says how long the gradient
 * all-reduces took: waiting for the slowest rank included, as the step pays it. */
static void report_stats(const comm *c) {
    const char *on = getenv("DTRAIN_COMM_STATS");
    if (!on || !on[0] || c->rank != 0 || c->grad_calls == 0) return;
    fprintf(stderr, "dtrain: comm stats: %ld gradient all-reduces of %zu floats over %d ranks on %d nodes: "
            "%.3f ms each, %.3f s in all\n", c->grad_calls, c->grad_floats, c->world, c->nodes,
            1e3 * c->grad_s / (double)c->grad_calls, c->grad_s);
}

void comm_finalize(comm *c) {
    if (!c) return;
    report_stats(c);
    MPI_Comm_free(&c->node);
    MPI_Comm_free(&c->probe);
    free(c->hosts);
    free(c->node_list);
    free(c);
    if (--g_comms == 0) {
        MPI_Finalize();
        free(g_mpi_argv);
        g_mpi_argv = NULL;
    }
}

int comm_rank(const comm *c) { return c->rank; }
int comm_world(const comm *c) { return c->world; }
int comm_local_rank(const comm *c) { return c->local_rank; }
int comm_local_size(const comm *c) { return c->local_size; }
int comm_nodes(const comm *c) { return c->nodes; }
const char *comm_node_list(const comm *c) { return c->node_list; }
const char *comm_host_of(const comm *c, int rank) { return c->hosts + (size_t)rank * HOST_LEN; }
void comm_set_timeout(comm *c, double seconds) { c->timeout_s = seconds; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Polls req until it completes, fails, or `until` passes. Returns MPI_SUCCESS, the MPI
 * error, or -1 at the deadline. Polling is what moves a non-blocking collective on, so
 * it spins for the first millisecond (a collective usually ends within it) and then
 * yields the core between polls (20 us) to the rank's own threads and its neighbours. */
static int wait_until(MPI_Request *req, double until) {
    double t0 = now_s();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        double t = now_s();
        if (t > until) return -1;
        if (t - t0 > 1e-3) nanosleep(&(struct timespec){0, 20000}, NULL);
    }
}

/* After a collective timed out or failed: every rank that is still running does the
 * same, so each sends a word to every other on the private channel and listens for
 * theirs for a while. Those not heard from are named: their host is cut off or they have
 * stopped. Writes the list into out. */
static void name_silent_peers(comm *c, char *out, size_t cap) {
    int n = c->world, me = c->rank, word = 1;
    MPI_Request *reqs = calloc((size_t)n * 2, sizeof *reqs);
    int *got = calloc((size_t)n, sizeof *got);
    out[0] = '\0';
    if (!reqs || !got) {
        snprintf(out, cap, "(no memory to probe the other ranks)");
        free(reqs), free(got);
        return;
    }
    for (int r = 0; r < n; r++) {
        reqs[2 * r] = reqs[2 * r + 1] = MPI_REQUEST_NULL;
        if (r == me) continue;
        MPI_Irecv(&got[r], 1, MPI_INT, r, 7, c->probe, &reqs[2 * r]);
        MPI_Isend(&word, 1, MPI_INT, r, 7, c->probe, &reqs[2 * r + 1]);
    }
    /* the others reach their own deadline up to a step later than this rank */
    double window = c->timeout_s / 4 < 2 ? 2 : c->timeout_s / 4 > 5 ? 5 : c->timeout_s / 4;
    double until = now_s() + window;
    for (int r = 0; r < n; r++)
        if (r != me && wait_until(&reqs[2 * r], until) != MPI_SUCCESS) got[r] = 0;
    size_t len = 0;
    for (int r = 0; r < n && len + 1 < cap; r++) {
        if (r == me || got[r]) continue;
        len += (size_t)snprintf(out + len, cap - len, "%srank %d (%s)", len ? ", " : "", r, comm_host_of(c, r));
    }
    /* the requests are left pending: the job is about to be aborted */
    free(reqs), free(got);
}

/* Waits for a collective under the deadline; on a timeout or an MPI error, names the
 * ranks that no longer answer and brings the job down. */
static void wait_collective(comm *c, MPI_Request *req, const char *what) {
    int rc = wait_until(req, now_s() + c->timeout_s);
    if (rc == MPI_SUCCESS) return;
    char why[MPI_MAX_ERROR_STRING + 64], silent[1024];
    if (rc == -1) {
        snprintf(why, sizeof why, "did not complete within comm_timeout = %g s", c->timeout_s);
    } else {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        snprintf(why, sizeof why, "failed (%s)", msg);
    }
    name_silent_peers(c, silent, sizeof silent);
    if (silent[0])
        comm_abort(c, 3, "on %s: %s %s; no answer from %s: host unreachable or rank stopped",
                   comm_host_of(c, c->rank), what, why, silent);
    comm_abort(c, 3, "on %s: %s %s, though every rank still answers (one is far behind the others?)",
               comm_host_of(c, c->rank), what, why);
}

/* MPI counts are int: large buffers go in pieces of at most 1 Gi elements. */
#define CHUNK ((size_t)1 << 30)

/* In-place sum of cnt elements over the ranks, under the deadline when one is set. */
static void allreduce_sum(comm *c, void *buf, int cnt, MPI_Datatype type, const char *what) {
    if (c->timeout_s > 0) {
        MPI_Request req;
        MPI_CHECK(c, MPI_Iallreduce(MPI_IN_PLACE, buf, cnt, type, MPI_SUM, MPI_COMM_WORLD, &req));
        wait_collective(c, &req, what);
    } else {
        MPI_CHECK(c, MPI_Allreduce(MPI_IN_PLACE, buf, cnt, type, MPI_SUM, MPI_COMM_WORLD));
    }
}

void comm_allreduce_mean_f32(comm *c, float *buf, size_t n) {
    if (c->world == 1) return;
    double t0 = now_s();
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        allreduce_sum(c, buf + off, cnt, MPI_FLOAT, "the gradient all-reduce");
    }
    float inv = 1.0f / (float)c->world;
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
    c->grad_calls++;
    c->grad_s += now_s() - t0;
    c->grad_floats = n;
}

void comm_step_sum_f64(comm *c, double *buf, size_t n) {
    if (c->world == 1) return;
    allreduce_sum(c, buf, (int)n, MPI_DOUBLE, "the step's agreement (loss, NaN check, stop)");
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
