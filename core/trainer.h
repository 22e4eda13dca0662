/* trainer.h: the training loop shared by every job.
 *
 * One step: zero grads → job forward/backward → all-reduce (mean) of the gradient arena
 * → clip by global norm → LR schedule → optimizer step. Every `epoch`, the job evaluates
 * and rank 0 logs a line and appends to metrics.jsonl; at the end summary.json. */
#ifndef DTRAIN_TRAINER_H
#define DTRAIN_TRAINER_H

#include <stdio.h>

#include "comm.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

typedef struct trainer {
    const job *job;
    config cfg;
    comm *comm;
    int rank, world;
    int threads;
    model model;
    optimizer opt;
    lr_schedule sched;
    rng rng;   /* this rank's stream, from (seed, rank) */
    long step; /* optimizer steps taken */
    long epoch;
    long steps_per_epoch;
    long total_steps;
    char out_dir[1024];
    FILE *metrics_file; /* rank 0 only */
    double lr, grad_norm;
    metrics summary;
    void *js; /* the job's state */
} trainer;

/* `dtrain <job> [--config FILE] [--key value ...]`: runs the whole job; returns the
 * process exit code. argv[0] is the job name. */
int trainer_main(const job *j, int argc, char **argv);

/* The training-step core, exposed for the data-parallel equivalence test: averages the
 * gradient arena over ranks, clips, and applies one optimizer step at the scheduled LR. */
void trainer_apply_gradients(trainer *t);

/* A fatal error: prints "dtrain: rank R/W: message" and brings every rank down. */
_Noreturn void trainer_fail(trainer *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Only rank 0 prints: progress lines and reports. */
void trainer_log(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keys every job has (seed, epochs, batch_size, optimizer, lr, ...). */
extern const cfg_spec trainer_keys[];

/* Sets up a trainer without running it (config from argv, communicator, threads,
 * job->create, arenas, optimizer, broadcast of initial parameters). Returns 0, or an
 * exit code after printing why. Used by trainer_main and by tests. */
int trainer_setup(trainer *t, const job *j, int argc, char **argv);
void trainer_teardown(trainer *t);

/* Exit codes of `dtrain`, documented in README. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_COMM = 3 };

#endif
