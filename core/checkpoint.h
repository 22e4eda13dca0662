/* checkpoint.h: one HDF5 file per checkpoint, written atomically, verified on open.
 *
 * Layout (readable with h5dump and h5py):
 *   /<group>/<tensor name>   float32 datasets with the tensor's shape, Fletcher32 checksum,
 *                            one group per buffer: "params", "adam_m", "adam_v", "momentum",
 *                            "ema", ... (the caller names them)
 *   /job_state               uint8 dataset, the job's opaque resume state (may be empty)
 *   /rng_states              uint64 [world_size, 4], every rank's RNG stream
 *   attributes on "/": format_version (int), job (string), step, epoch, step_in_epoch
 *   (int64), world_size (int), config (string, the resolved config text), lr (double),
 *   metrics (string, JSON of the last logged metrics), and any extra int64/double
 *   attributes the caller adds. Strings are fixed-length UTF-8 (h5py reads them as bytes).
 *
 *   Datasets are chunked (at most 4 MiB a chunk) because Fletcher32 needs chunks; empty
 *   ones are contiguous. The file uses the HDF5 1.8 format, whose metadata (attributes
 *   included) is checksummed too. The chunks are checksummed and checked by this module
 *   itself, bit-identical to HDF5's filter, so HDF5 tools verify them as usual.
 *
 * Writing: to DIR/.NAME.h5.tmp, H5Fflush, H5Fclose, fsync, rename to DIR/NAME.h5, fsync DIR;
 * then DIR/latest (a one-line text file holding NAME.h5) is replaced the same way; only
 * then are older checkpoints deleted and temporary files of crashed attempts removed. A
 * crash at any point leaves the previous checkpoint and a `latest` that points at a
 * complete file. One writer per directory (rank 0).
 *
 * Steps and pruning: a checkpoint's step, for ordering, is the number its name ends with
 * ("ckpt-00001234" is step 1234). Pruning looks only at files of the same series (the name
 * up to that number): it keeps the one just written and the keep-1 others with the highest
 * steps, and never deletes the file `latest` names. */
#ifndef DTRAIN_CHECKPOINT_H
#define DTRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_FORMAT_VERSION 1
#define CKPT_MAX_EXTRA 16

typedef struct ckpt_tensor {
    const char *group; /* "params", "adam_m", ... */
    const char *name;  /* "conv0.weight"; may contain '.' but not '/' */
    int ndim;
    int shape[4];
    float *data;       /* written from, or read into */
} ckpt_tensor;

typedef struct ckpt_extra {
    char key[48];
    int is_int;
    int64_t i;
    double d;
} ckpt_extra;

typedef struct ckpt_meta {
    char job[32];
    int64_t step, epoch, step_in_epoch;
    int world_size;
    double lr;
    const char *config_text;  /* write: borrowed; read: owned by the ckpt handle */
    const char *metrics_json; /* likewise; may be NULL/"" */
    const uint64_t *rng_states; /* [world_size * 4]; read: owned by the handle */
    const uint8_t *job_state;   /* may be NULL when job_state_len == 0 */
    size_t job_state_len;
    ckpt_extra extra[CKPT_MAX_EXTRA];
    int nextra;
} ckpt_meta;

/* Writes DIR/NAME.h5 as above (creating DIR if needed) and points DIR/latest at it; keeps
 * the newest `keep` checkpoints (by step) and deletes older ones after the new one is safe;
 * keep <= 0 keeps all. Returns 0, or -1 with a one-line message in err naming the path and
 * the operation that failed (the previous checkpoint and `latest` untouched, no temporary
 * file left behind). An old checkpoint that cannot be deleted is a warning on stderr. */
int ckpt_write(const char *dir, const char *name, const ckpt_meta *meta,
               const ckpt_tensor *tensors, int ntensors, int keep, char *err, size_t errlen);

typedef struct ckpt ckpt;

/* Opens and VERIFIES a checkpoint: the format version, the attributes, and every dataset
 * read once through its checksum (chunk by chunk into a scratch buffer, so ckpt_read reads
 * the data a second time). NULL and a one-line message naming the file and what failed
 * otherwise. Extras come back in name order. */
ckpt *ckpt_open(const char *path, char *err, size_t errlen);
const ckpt_meta *ckpt_get_meta(const ckpt *c);
/* Reads GROUP/NAME into t->data; the shape must equal t->shape (message names the tensor,
 * the checkpoint's shape and the expected one). */
int ckpt_read(ckpt *c, const ckpt_tensor *t, char *err, size_t errlen);
int ckpt_has(const ckpt *c, const char *group, const char *name);
/* How many tensors GROUP holds (-1 if it is missing or unreadable): a model that reads fewer
 * than its checkpoint holds is a different model. */
long ckpt_count(const ckpt *c, const char *group);
void ckpt_close(ckpt *c);

/* Candidates for `--resume auto` in DIR, best first: the file `latest` names, then every
 * other *.h5 checkpoint by descending step. Returns how many paths were written (each
 * malloc'd; free them). 0 when the directory has none or does not exist. */
int ckpt_candidates(const char *dir, char **paths, int max);

/* Test hook: if the environment variable DTRAIN_TEST_CRASH_IN_CHECKPOINT is set, ckpt_write
 * kills its own process with SIGKILL after writing half of the tensors to the temporary
 * file — a crash in the middle of a checkpoint, for the fault tests. */

#endif
