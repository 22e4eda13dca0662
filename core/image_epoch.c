#include "image_epoch.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void image_epoch_init(image_epoch *e, image_shard *train, const char *path, uint64_t seed, int shuffle,
                      long per_step) {
    memset(e, 0, sizeof *e);
    e->train = train;
    e->path = path;
    e->seed = seed;
    e->shuffle = shuffle;
    e->per_step = per_step;
}

static void leave_remainder(image_epoch *e) {
    if (!e->remainder) return;
    image_shard_close(e->remainder);
    e->remainder = NULL;
    free(e->seen_before);
    e->seen_before = NULL;
}

long image_epoch_steps(const image_epoch *e, const trainer *t) {
    return image_shard_total(e->train) / t->world / e->per_step;
}

long image_epoch_start(image_epoch *e, const trainer *t, long epoch) {
    leave_remainder(e);
    image_shard_set_epoch(e->train, e->seed, epoch, e->shuffle);
    return image_epoch_steps(e, t);
}

image_shard *image_epoch_shard(const image_epoch *e) { return e->remainder ? e->remainder : e->train; }

uint8_t *image_epoch_save(image_epoch *e, trainer *t, long step_in_epoch, size_t *len) {
    long total = image_shard_total(e->train);
    int32_t *seen = xcalloc((size_t)total, sizeof *seen);
    if (e->seen_before)
        for (long i = 0; i < total; i++) seen[i] = e->seen_before[i];
    long consumed = step_in_epoch * e->per_step;
    long *idx = xmalloc((size_t)(consumed + 1) * sizeof *idx);
    image_shard_get(image_epoch_shard(e), 0, (int)consumed, NULL, NULL, idx);
    for (long i = 0; i < consumed; i++) seen[idx[i]] = 1;
    free(idx);
    comm_allreduce_max_i32(t->comm, seen, (size_t)total);
    uint8_t *buf = xmalloc((size_t)total + 1);
    buf[0] = e->remainder != NULL; /* whether this epoch's order is a remainder order */
    for (long i = 0; i < total; i++) buf[i + 1] = (uint8_t)seen[i];
    free(seen);
    *len = (size_t)total + 1;
    return buf;
}

long image_epoch_load(image_epoch *e, trainer *t, long epoch, long step_in_epoch, int saved_world,
                      const uint8_t *buf, size_t len, long *first_step) {
    long total = image_shard_total(e->train);
    if ((long)len != total + 1)
        trainer_fail(t, EXIT_USAGE, "cannot resume: the checkpoint's data state covers %zu examples, the "
                     "training set has %ld (was it written for another data file?)", len ? len - 1 : 0, total);
    if (saved_world == t->world && buf[0] == 0) {
        *first_step = step_in_epoch;
        return image_epoch_start(e, t, epoch);
    }
    leave_remainder(e);
    long left = 0;
    for (long i = 0; i < total; i++) left += !buf[i + 1];
    long *rest = xmalloc((size_t)(left + 1) * sizeof *rest), k = 0;
    for (long i = 0; i < total; i++)
        if (!buf[i + 1]) rest[k++] = i;
    long lo = shard_begin(t->rank, t->world, left), hi = shard_begin(t->rank + 1, t->world, left);
    char err[1024];
    e->remainder = image_shard_open_subset(e->path, "train", t->rank, rest + lo, hi - lo, err, sizeof err);
    free(rest);
    if (!e->remainder) trainer_fail(t, EXIT_USAGE, "%s", err);
    image_shard_set_epoch(e->remainder, e->seed, epoch, e->shuffle);
    e->seen_before = xmalloc((size_t)total);
    memcpy(e->seen_before, buf + 1, (size_t)total);
    *first_step = 0;
    return left / t->world / e->per_step;
}

void image_epoch_free(image_epoch *e) { leave_remainder(e); }
