/* ckpt_v1.c: reading format-1 checkpoints into the training-state record of format 2.
 *
 * Format 1 kept the trainer's scalars as attributes on "/" (opt_t and epoch_steps among
 * them, which the first format-1 files lacked), the RNG streams as /rng_states [world, 4],
 * and the rest in a byte blob /job_state: a header {uint32 magic "dtr1", uint32 world,
 * uint64 job_len}, then [world][epoch_loss_sum, epoch_items] as doubles, then the job's
 * bytes. Only image_epoch ever wrote job bytes: one byte "this epoch's order is a remainder
 * order", then one byte per training example, 1 where it was consumed this epoch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_epoch.h"
#include "train_state.h"
#include "util.h"

#define V1_MAGIC 0x64747231u /* "dtr1" */

typedef struct {
    uint32_t magic, world;
    uint64_t job_len;
} v1_header;

/* A scalar the first format-1 files lacked: optimizer_steps (= step), epoch_steps (= 0). */
static int64_t v1_default(const char *name, const loaded_state *s) {
    if (strcmp(name, "optimizer_steps") == 0)
        for (int i = 0; i < TRAIN_STATE_N; i++)
            if (strcmp(TRAIN_STATE[i].name, "step") == 0) return s->vals[i];
    return 0;
}

static int optional(const char *name) {
    return strcmp(name, "epoch_steps") == 0 || strcmp(name, "optimizer_steps") == 0;
}

static int read_named(ckpt *c, loaded_state *s, char *err, size_t errlen) {
    for (int i = 0; i < TRAIN_STATE_N; i++) {
        const state_entry *e = &TRAIN_STATE[i];
        if (!e->v1_name) continue;
        s->trainer[i] = (ckpt_field){"", e->v1_name, e->type, e->per_rank ? (e->per_rank > 1 ? 2 : 1) : 0,
                                     {0, 0}, e->per_rank ? NULL : &s->vals[i]};
        if (optional(e->name) && !ckpt_has_field(c, &s->trainer[i])) {
            s->vals[i] = v1_default(e->name, s);
            continue;
        }
        if (ckpt_read_field(c, &s->trainer[i], err, errlen) != 0) return -1;
    }
    return 0;
}

/* The blob's per-rank doubles into the fields without a v1 name, in table order. */
static int split_blob(const uint8_t *buf, size_t len, loaded_state *s, const uint8_t **job, size_t *job_len,
                      char *why, size_t whylen) {
    v1_header h;
    if (len < sizeof h) return snprintf(why, whylen, "%zu bytes, shorter than its header", len), -1;
    memcpy(&h, buf, sizeof h);
    size_t per = 2 * sizeof(double);
    /* the header's counts against the bytes present, without a sum that could wrap: a
     * job_len near 2^64 would otherwise make the total come out right */
    if (h.magic != V1_MAGIC) return snprintf(why, whylen, "magic 0x%08x, expected 0x%08x", h.magic, V1_MAGIC), -1;
    if (h.world < 1 || h.world > STATE_WORLD_MAX)
        return snprintf(why, whylen, "world %u, expected 1..%d", h.world, STATE_WORLD_MAX), -1;
    size_t rest = len - sizeof h;
    if ((uint64_t)h.world * per > rest || h.job_len != rest - (uint64_t)h.world * per)
        return snprintf(why, whylen, "its header says %u ranks and %llu job bytes, the blob holds %zu bytes",
                        h.world, (unsigned long long)h.job_len, len), -1;
    int k = 0;
    for (int i = 0; i < TRAIN_STATE_N && k < 2; i++) {
        if (TRAIN_STATE[i].v1_name) continue;
        double *col = xmalloc(h.world * sizeof *col);
        for (uint32_t r = 0; r < h.world; r++)
            memcpy(&col[r], buf + sizeof h + r * per + (size_t)k * sizeof(double), sizeof(double));
        s->trainer[i] = (ckpt_field){"", TRAIN_STATE[i].name, CKPT_F64, 1, {h.world, 0}, col};
        k++;
    }
    *job = buf + sizeof h + h.world * per;
    *job_len = h.job_len;
    return 0;
}

int read_fields_v1(ckpt *c, const job *j, loaded_state *s, char *err, size_t errlen) {
    if (read_named(c, s, err, errlen) != 0) return -1;
    ckpt_field blob = {"", "job_state", CKPT_U8, 1, {0, 0}, NULL};
    if (ckpt_read_field(c, &blob, err, errlen) != 0) return -1;
    const uint8_t *job;
    size_t job_len;
    char why[256] = "the job's bytes do not fit this job";
    int rc = split_blob(blob.data, (size_t)blob.dims[0], s, &job, &job_len, why, sizeof why);
    if (rc == 0 && job_len > 0) {
        if (j->state_fields != image_epoch_state_fields) rc = -1;
        else rc = image_epoch_fields_from_v1(job, job_len, s->job);
        if (rc == 0) s->njob = image_epoch_nfields();
    }
    free(blob.data);
    if (rc != 0) snprintf(err, errlen, "%s: format 1: its /job_state is malformed: %s", ckpt_path(c), why);
    return rc;
}
