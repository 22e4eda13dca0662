/* image_epoch.h: the order in which a rank reads its image shard during an epoch, in a form
 * that survives a resume on any number of ranks.
 *
 * Normally the order is the rank's shard shuffled from (seed, epoch, rank). The resume
 * state is one byte per training example (1 = consumed this epoch, OR over ranks). On the
 * same number of ranks the epoch's permutation simply continues (bit for bit the
 * uninterrupted run); on another number, the examples not yet consumed are split evenly
 * over the new ranks in index order and each rank shuffles its part, so none is seen twice
 * or skipped. Jobs that read image shards by epoch (classify, diffusion) share this, and
 * the job-table entries at the end: their state struct begins with its image_epoch.
 *
 * In checkpoints (the job's /job_state group): data_consumed, uint8 [training examples],
 * 1 where the example was consumed this epoch by any rank; data_order_is_remainder, int64,
 * whether this epoch's order is already a remainder order (a resume on another world). */
#ifndef DTRAIN_IMAGE_EPOCH_H
#define DTRAIN_IMAGE_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "image_shard.h"
#include "trainer.h"

typedef struct image_epoch {
    image_shard *train;     /* the rank's regular shard (not owned) */
    const char *path;       /* the HDF5 file, for reading a remainder */
    uint64_t seed;
    int shuffle;
    long per_step;          /* examples one rank consumes per optimizer step */
    image_shard *remainder; /* the rest of an epoch after a resume on another world size */
    uint8_t *seen_before;   /* with remainder: examples consumed before it, this epoch */
} image_epoch;

void image_epoch_init(image_epoch *e, image_shard *train, const char *path, uint64_t seed, int shuffle,
                      long per_step);
/* Optimizer steps of a regular epoch: the smallest shard sets the pace for every rank. */
long image_epoch_steps(const image_epoch *e, const trainer *t);
/* Orders epoch `epoch`; returns its number of steps. */
long image_epoch_start(image_epoch *e, const trainer *t, long epoch);
/* The shard the current epoch reads (the regular one or a remainder). */
image_shard *image_epoch_shard(const image_epoch *e);
/* Micro-batch `micro` of step `step` reads positions [(step * grad_accum + micro) * n, + n)
 * of the epoch's order: n images, labels and (if idx) training-set indices. Returns the
 * first position. */
long image_epoch_batch(const image_epoch *e, const trainer *t, long step, int micro, int n, uint8_t *images,
                       uint8_t *labels, long *idx);

/* The resume state: image_epoch_state_fields declares it (a job's state_fields). */
extern const ckpt_field image_epoch_state_fields[];
/* Collective: fills fields (a copy of the table) after `step_in_epoch` steps. */
void image_epoch_save(image_epoch *e, trainer *t, long step_in_epoch, ckpt_field *fields);
/* Restores epoch `epoch` from the fields; sets *first_step, returns the epoch's steps. */
long image_epoch_load(image_epoch *e, trainer *t, long epoch, long step_in_epoch, int saved_world,
                      const ckpt_field *fields, long *first_step);
/* A format-1 checkpoint's job bytes as the fields (data malloc'd); -1 if malformed. */
int image_epoch_fields_from_v1(const uint8_t *buf, size_t len, ckpt_field *fields);
int image_epoch_nfields(void);

/* Job-table entries for a job whose state struct begins with its image_epoch:
 *     .steps_per_epoch = image_epoch_job_steps, .start_epoch = image_epoch_job_start,
 *     .state_fields = image_epoch_state_fields, .save_state = image_epoch_job_save,
 *     .load_state = image_epoch_job_load */
long image_epoch_job_steps(void *js, trainer *t);
long image_epoch_job_start(void *js, trainer *t, long epoch);
void image_epoch_job_save(void *js, trainer *t, long step_in_epoch, ckpt_field *fields);
long image_epoch_job_load(void *js, trainer *t, long epoch, long step_in_epoch, int saved_world,
                          const ckpt_field *fields, long *first_step);
void image_epoch_free(image_epoch *e);

#endif
