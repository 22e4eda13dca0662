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

long image_epoch_batch(const image_epoch *e, const trainer *t, long step, int micro, int n, uint8_t *images,
                       uint8_t *labels, long *idx) {
    long pos = (step * t->grad_accum + micro) * n;
    image_shard_get(image_epoch_shard(e), pos, n, images, labels, idx);
    return pos;
}

/* ---- resume state ---------------------------------------------------------------------- */

enum { F_CONSUMED, F_REMAINDER, NFIELDS };
const ckpt_field image_epoch_state_fields[] = {
    [F_CONSUMED] = {NULL, "data_consumed", CKPT_U8, 1, {0, 0}, NULL},
    [F_REMAINDER] = {NULL, "data_order_is_remainder", CKPT_I64, 0, {0, 0}, NULL},
    [NFIELDS] = {0},
};

int image_epoch_nfields(void) { return NFIELDS; }

void image_epoch_save(image_epoch *e, trainer *t, long step_in_epoch, ckpt_field *fields) {
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
    uint8_t *bytes = xmalloc((size_t)total + 1);
    for (long i = 0; i < total; i++) bytes[i] = (uint8_t)seen[i];
    free(seen);
    fields[F_CONSUMED].data = bytes;
    fields[F_CONSUMED].dims[0] = total;
    int64_t *remainder = xmalloc(sizeof *remainder);
    *remainder = e->remainder != NULL;
    fields[F_REMAINDER].data = remainder;
}

long image_epoch_load(image_epoch *e, trainer *t, long epoch, long step_in_epoch, int saved_world,
                      const ckpt_field *fields, long *first_step) {
    long total = image_shard_total(e->train);
    const uint8_t *seen = fields[F_CONSUMED].data;
    int64_t len = fields[F_CONSUMED].dims[0];
    if (len != total)
        trainer_fail(t, EXIT_USAGE, "cannot resume: %s: its data state covers %lld examples, the training set "
                     "has %ld (was it written for another data file?)", t->resume_path, (long long)len, total);
    int64_t remainder = *(const int64_t *)fields[F_REMAINDER].data;
    if (remainder != 0 && remainder != 1)
        trainer_fail(t, EXIT_USAGE, "cannot resume: %s: /job_state data_order_is_remainder = %lld, expected 0 or 1",
                     t->resume_path, (long long)remainder);
    for (long i = 0; i < total; i++)
        if (seen[i] > 1)
            trainer_fail(t, EXIT_USAGE, "cannot resume: %s: /job_state/data_consumed[%ld] = %d, expected 0 or 1",
                         t->resume_path, i, seen[i]);
    if (saved_world == t->world && *(const int64_t *)fields[F_REMAINDER].data == 0) {
        *first_step = step_in_epoch;
        return image_epoch_start(e, t, epoch);
    }
    leave_remainder(e);
    long left = 0;
    for (long i = 0; i < total; i++) left += !seen[i];
    long *rest = xmalloc((size_t)(left + 1) * sizeof *rest), k = 0;
    for (long i = 0; i < total; i++)
        if (!seen[i]) rest[k++] = i;
    long lo = shard_begin(t->rank, t->world, left), hi = shard_begin(t->rank + 1, t->world, left);
    char err[1024];
    e->remainder = image_shard_open_subset(e->path, "train", t->rank, rest + lo, hi - lo, err, sizeof err);
    free(rest);
    if (!e->remainder) trainer_fail(t, EXIT_USAGE, "%s", err);
    image_shard_set_epoch(e->remainder, e->seed, epoch, e->shuffle);
    e->seen_before = xmalloc((size_t)total + 1);
    memcpy(e->seen_before, seen, (size_t)total);
    *first_step = 0;
    return left / t->world / e->per_step;
}

/* Format 1 wrote one byte "remainder order", then one byte per example. */
int image_epoch_fields_from_v1(const uint8_t *buf, size_t len, ckpt_field *fields) {
    if (len < 1) return -1;
    for (int i = 0; i < NFIELDS; i++) fields[i] = image_epoch_state_fields[i];
    uint8_t *bytes = xmalloc(len);
    memcpy(bytes, buf + 1, len - 1);
    fields[F_CONSUMED].data = bytes;
    fields[F_CONSUMED].dims[0] = (int64_t)len - 1;
    int64_t *remainder = xmalloc(sizeof *remainder);
    *remainder = buf[0];
    fields[F_REMAINDER].data = remainder;
    return 0;
}

/* ---- job-table entries: the job's state begins with its image_epoch ------------------- */

long image_epoch_job_steps(void *js, trainer *t) { return image_epoch_steps(js, t); }

long image_epoch_job_start(void *js, trainer *t, long epoch) { return image_epoch_start(js, t, epoch); }

void image_epoch_job_save(void *js, trainer *t, long step_in_epoch, ckpt_field *fields) {
    image_epoch_save(js, t, step_in_epoch, fields);
}

long image_epoch_job_load(void *js, trainer *t, long epoch, long step_in_epoch, int saved_world,
                          const ckpt_field *fields, long *first_step) {
    return image_epoch_load(js, t, epoch, step_in_epoch, saved_world, fields, first_step);
}

void image_epoch_free(image_epoch *e) { leave_remainder(e); }
