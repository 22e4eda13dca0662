/* image_epoch.h: the order in which a rank reads its image shard during an epoch, in a form
 * that survives a resume on any number of ranks.
 *
 * Normally the order is the rank's shard shuffled from (seed, epoch, rank). The resume
 * state is one byte per training example (1 = consumed this epoch, OR over ranks). On the
 * same number of ranks the epoch's permutation simply continues (bit for bit the
 * uninterrupted run); on another number, the examples not yet consumed are split evenly
 * over the new ranks in index order and each rank shuffles its part, so none is seen twice
 * or skipped. Jobs that read image shards by epoch (classify, diffusion) share this. */
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
/* Collective: the resume state after `step_in_epoch` steps (malloc'd, *len bytes). */
uint8_t *image_epoch_save(image_epoch *e, trainer *t, long step_in_epoch, size_t *len);
/* Restores epoch `epoch` from a saved state; sets *first_step, returns the epoch's steps. */
long image_epoch_load(image_epoch *e, trainer *t, long epoch, long step_in_epoch, int saved_world,
                      const uint8_t *buf, size_t len, long *first_step);
void image_epoch_free(image_epoch *e);

#endif
