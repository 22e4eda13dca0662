/* messages.c: errors every rank agrees on (one line, from the lowest failing rank), and
 * rank 0's progress lines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_select.h"
#include "train_state.h"

void trainer_fail(trainer *t, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    comm_abort(t ? t->comm : NULL, code, "%s", msg);
}

void trainer_check(trainer *t, int failed, int code, const char *fmt, ...) {
    char msg[1024] = "";
    if (failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (!t || !t->comm || t->world == 1) {
        if (failed) trainer_fail(t, code, "%s", msg);
        return;
    }
    /* the max picks the lowest failing rank, and its exit code with it (codes are < 256) */
    int32_t v = failed ? (t->world - t->rank) * 256 + (code & 255) : 0;
    comm_allreduce_max_i32(t->comm, &v, 1);
    if (v == 0) return;
    if (t->rank == t->world - v / 256) {
        fprintf(stderr, "dtrain: rank %d/%d: %s\n", t->rank, t->world, msg);
        fflush(stderr);
    }
    comm_finalize(t->comm);
    exit(v % 256);
}

void trainer_log(trainer *t, const char *fmt, ...) {
    if (t->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* Who started us: srun sets SLURM_PROCID per task, mpirun sets OMPI_COMM_WORLD_RANK. */
static const char *launcher(void) {
    if (getenv("OMPI_COMM_WORLD_RANK")) return "mpirun";
    if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_ID")) return "srun";
    return "singleton";
}

void trainer_print_world(trainer *t) {
    int local_max = comm_local_size(t->comm) - 1;
    char device[384];
    trainer_log(t, "dtrain %s | %d rank%s on %d node%s [%s] (local ranks 0-%d) | launcher %s | device %s | "
                "%d thread%s per rank | %zu parameters\n", t->job->name, t->world, t->world == 1 ? "" : "s",
                comm_nodes(t->comm), comm_nodes(t->comm) == 1 ? "" : "s", comm_node_list(t->comm), local_max,
                launcher(), trainer_device_text(t, device, sizeof device), t->threads, t->threads == 1 ? "" : "s",
                t->model.nparams);
    const char *ntasks = getenv("SLURM_NTASKS"), *job = getenv("SLURM_JOB_ID");
    if (ntasks && job && strcmp(launcher(), "srun") == 0) {
        trainer_log(t, "slurm job %s: SLURM_NTASKS=%s SLURM_PROCID=%s SLURM_LOCALID=%s\n", job, ntasks,
                    getenv("SLURM_PROCID"), getenv("SLURM_LOCALID") ? getenv("SLURM_LOCALID") : "?");
        if (atoi(ntasks) != t->world)
            trainer_log(t, "dtrain: warning: SLURM_NTASKS=%s but MPI reports %d ranks (was srun started "
                        "without --mpi=pmix?)\n", ntasks, t->world);
    }
}
