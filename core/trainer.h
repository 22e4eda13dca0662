/* trainer.h: the training loop shared by every job.
 *
 * One step: zero grads → job forward/backward over grad_accum micro-batches → all-reduce
 * (mean) of the gradient arena → clip by global norm → LR schedule → optimizer step →
 * the ranks agree on a few flags (a stop signal arrived, the loss is not finite).
 * Evaluation, logging and checkpoints happen at step boundaries, where every rank is.
 *
 * What is implemented where: the loop and set-up in trainer.c; trainer_fail, trainer_check
 * and trainer_log in messages.c; trainer_add_buffer and trainer_read_group (the checkpoint
 * contract) in train_state.c; trainer_load_for_inference in resume.c; trainer_keys in
 * config_cli.c. */
#ifndef DTRAIN_TRAINER_H
#define DTRAIN_TRAINER_H

#include <stdio.h>

#include "comm.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "optim.h"
#include "params.h"
#include "rng.h"

struct grad_reducer;
struct comm_nccl;

typedef struct trainer {
    const job *job;
    config cfg;
    comm *comm;
    int rank, world;
    int threads;
    int grad_accum;
    model model;
    struct grad_reducer *reducer; /* averages the gradients over ranks (grad_reduce.h) */
    struct comm_nccl *nccl;       /* on cuda with NCCL: the reducer's communicator, else NULL */
    optimizer opt;
    lr_schedule sched;
    rng rng;              /* this rank's stream, from (seed, rank) */
    long step;            /* optimizer steps taken */
    long epoch;           /* current epoch, from 0 */
    long step_in_epoch;   /* steps taken in the current epoch */
    long epoch_steps;     /* steps of the current epoch */
    long steps_per_epoch; /* of a regular epoch */
    long total_steps;     /* where training ends (max_steps, or epochs x steps_per_epoch) */
    double epoch_loss_sum, epoch_items; /* this rank's sums over the current epoch */
    char out_dir[1024];
    char ckpt_dir[1100];
    FILE *metrics_file; /* rank 0 only */
    double lr, grad_norm, last_loss;
    metrics last;       /* the last logged metrics line */
    metrics summary;
    void *js;           /* the job's state */
    int resumed;        /* set up from a checkpoint */
    int resume_job_state; /* resumed inside an epoch whose data state the job must restore */
    ckpt_field *resume_fields; /* the job's state_fields as read from the checkpoint */
    int resume_nfields;
    int resume_world;
    char resume_path[4096]; /* the checkpoint resumed from, for the job's messages about its state */
    long test_stop_at;  /* DTRAIN_TEST_STOP_AT_STEP: act as if stopped by a signal there */
    long test_freeze_at; /* DTRAIN_TEST_FREEZE_AT_STEP: the last rank freezes there (SIGSTOP)
                          * between the gradient all-reduce and the step's agreement */
    struct {
        char group[32];
        float *data;    /* model.nfloats floats, laid out like the parameters, backend memory */
    } buffers[4];       /* a job's extra per-parameter state, e.g. "ema" */
    int nbuffers;
} trainer;

/* `dtrain <job> [--config FILE] [--key value ...]`: runs the whole job; returns the
 * process exit code. argv[0] is the job name. */
int trainer_main(const job *j, int argc, char **argv);

/* Sets up a trainer without running it: config from argv, communicator, threads, run
 * directory, job->create, arenas, optimizer, initial parameters (rank 0, broadcast) or a
 * checkpoint (--resume). Returns 0, or an exit code after printing why (-1: --help). */
int trainer_setup(trainer *t, const job *j, int argc, char **argv);
void trainer_teardown(trainer *t);

/* For inference tools (`dtrain sample`, `dtrain eval`): a trainer built from the config
 * stored in a checkpoint, overridden by `--key value` pairs in argv, with the parameters
 * read from the checkpoint's "params" group. Singleton communicator; no run directory. */
int trainer_load_for_inference(trainer *t, const job *j, const char *ckpt_path, int argc,
                               char **argv);

/* A job's extra per-parameter buffer (e.g. an EMA of the weights), laid out like the
 * parameters, in the backend's memory, zeroed, saved in checkpoints as group `group` and
 * restored on resume. Call from create(), after the model's tensors are declared. */
float *trainer_add_buffer(trainer *t, const char *group);

/* Reads a checkpoint's group (laid out like the parameters: "params", "ema", ...) into dst,
 * backend memory laid out like the parameters (through a host copy). Returns 0, or an exit
 * code after printing why. */
int trainer_read_group(trainer *t, const char *ckpt_path, const char *group, float *dst);

/* The gradient path of a step, exposed for the data-parallel equivalence test: averages
 * the gradient arena over ranks, clips, and applies one optimizer step at the scheduled LR. */
void trainer_apply_gradients(trainer *t);

/* A fatal error: prints "dtrain: rank R/W: message" and brings every rank down. */
_Noreturn void trainer_fail(trainer *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A check every rank makes at the same point (setting up, reading the config or opening the
 * data): collective. If it failed on any rank, the lowest such rank prints its message, as
 * trainer_fail does, and every rank leaves cleanly with that code: one line, instead of one
 * per rank and MPI's abort banner. fmt is formatted only where failed. */
void trainer_check(trainer *t, int failed, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Only rank 0 prints: progress lines and reports. */
void trainer_log(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keys every job has (seed, epochs, batch_size, optimizer, lr, ...). */
extern const cfg_spec trainer_keys[];

/* Exit codes of `dtrain`, documented in README. */
enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1,   /* I/O and other runtime failures */
    EXIT_USAGE = 2,     /* bad key, value, data file or checkpoint */
    EXIT_COMM = 3,      /* MPI failure */
    EXIT_DIVERGED = 4,  /* the loss became NaN or Inf: stopped, no checkpoint written */
    EXIT_PREEMPTED = 75 /* stopped by SIGTERM/SIGUSR1 after writing a checkpoint: requeue */
};

#endif
