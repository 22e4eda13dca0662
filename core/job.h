/* job.h: what a job is to the trainer: a small table of functions.
 *
 * The trainer owns the loop, the communicator, the arenas, the optimizer and the run
 * directory; a job owns its model's layout, its data and its loss. Adding a job touches
 * no file of the others: write jobs/NAME/, list it in jobs/main.c. */
#ifndef DTRAIN_JOB_H
#define DTRAIN_JOB_H

#include "config.h"
#include "metrics.h"
#include "rng.h"

struct trainer;

typedef struct job {
    const char *name;
    const char *description;
    const cfg_spec *keys; /* job-specific config keys, {NULL}-terminated */
    const char *unit;     /* what throughput counts: "images", "tokens" */

    /* Declares the model's tensors with model_add (the trainer then allocates the
     * arenas) and opens this rank's data. Reports errors through trainer_fail. */
    void *(*create)(struct trainer *t);
    /* Fills the parameters. Called on rank 0 only; the trainer broadcasts the result. */
    void (*init_params)(void *js, struct trainer *t, rng *r);
    /* Optimizer steps in one epoch; must be the same on every rank. */
    long (*steps_per_epoch)(void *js, struct trainer *t);
    void (*start_epoch)(void *js, struct trainer *t, long epoch);
    /* Loads this rank's batch for step `step_in_epoch`, runs forward and backward,
     * accumulates gradients into the grad arena, and returns the mean loss over the
     * rank's batch; *items is how many units (images, tokens) the rank processed. */
    float (*forward_backward)(void *js, struct trainer *t, long step_in_epoch, long *items);
    /* Collective: evaluates on held-out data, fills `out` (e.g. test_loss, test_acc). */
    void (*eval)(void *js, struct trainer *t, metrics *out);
    /* Collective, at the end of training: final report; may add keys to the summary. */
    void (*finish)(void *js, struct trainer *t, metrics *summary);
    void (*destroy)(void *js);
} job;

#endif
