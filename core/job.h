/* job.h: what a job is to the trainer: a small table of functions.
 *
 * The trainer owns the loop, the communicator, the arenas, the optimizer, checkpoints and
 * the run directory; a job owns its model's layout, its data and its loss. Adding a job
 * touches no file of the others: write jobs/NAME/, list it in jobs/main.c. */
#ifndef DTRAIN_JOB_H
#define DTRAIN_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "config.h"
#include "metrics.h"
#include "rng.h"

struct trainer;

typedef struct job {
    const char *name;
    const char *description;
    const cfg_spec *keys; /* job-specific config keys, {NULL}-terminated */
    const char *unit;     /* what throughput counts: "images", "tokens" */
    /* Overrides of trainer defaults for this job, in config-file syntax ("key = value\n"),
     * applied before the user's --config and --key value. May be NULL. */
    const char *defaults;

    /* Declares the model's tensors with model_add (the trainer then allocates the
     * arenas) and opens this rank's data. Reports errors through trainer_fail. */
    void *(*create)(struct trainer *t);
    /* Fills the parameters. Called on rank 0 only; the trainer broadcasts the result. */
    void (*init_params)(void *js, struct trainer *t, rng *r);
    /* Optimizer steps in one regular epoch; must be the same on every rank. */
    long (*steps_per_epoch)(void *js, struct trainer *t);
    /* Prepares epoch `epoch` (e.g. shuffles the shard) and returns its number of steps. */
    long (*start_epoch)(void *js, struct trainer *t, long epoch);
    /* Micro-batch `micro` (0 .. t->grad_accum-1) of step `step_in_epoch`: loads this rank's
     * examples, runs forward and backward, ACCUMULATES gradients into the grad arena scaled
     * so that the sum over micro-batches is the mean over them, and returns the micro-batch
     * mean loss; *items is how many units (images, tokens) the rank processed. */
    float (*forward_backward)(void *js, struct trainer *t, long step_in_epoch, int micro,
                              long *items);
    /* Collective: evaluates on held-out data and fills `out` (test_loss, val_loss, ...). */
    void (*eval)(void *js, struct trainer *t, metrics *out);
    /* Collective, at the end of training: final report; may add keys to the summary. */
    void (*finish)(void *js, struct trainer *t, metrics *summary);
    void (*destroy)(void *js);
    /* After every optimizer step (optional): e.g. an exponential moving average. */
    void (*after_step)(void *js, struct trainer *t);

    /* Resume state (optional; NULL when the job's data position is a pure function of the
     * step, as for random windows drawn from (seed, step, rank)). The job's part of the
     * checkpoint contract: state_fields declares its fields, one line each ({NULL}-terminated:
     * name, type, ndim; stored in the checkpoint's /job_state group). save_state is
     * collective: it fills a copy of that table (data malloc'd, freed by the trainer; dims
     * set) with where this epoch's data stands after `step_in_epoch` steps (meaningful on
     * rank 0). load_state runs on every rank instead of start_epoch when resuming inside
     * epoch `epoch`: it restores the data order from the fields as read back (same order as
     * the table), also when the checkpoint was written by `saved_world` ranks and the world
     * now differs, sets *first_step (the step to continue from) and returns the epoch's
     * number of steps. core/image_epoch.h has all three for jobs that read image shards. */
    const ckpt_field *state_fields;
    void (*save_state)(void *js, struct trainer *t, long step_in_epoch, ckpt_field *fields);
    long (*load_state)(void *js, struct trainer *t, long epoch, long step_in_epoch, int saved_world,
                       const ckpt_field *fields, long *first_step);

    /* `dtrain sample JOB ...` and `dtrain eval JOB ...` entry points (optional): argv[0]
     * is the job name; they return the process exit code. */
    int (*sample_main)(int argc, char **argv);
    int (*eval_main)(int argc, char **argv);
} job;

#endif
