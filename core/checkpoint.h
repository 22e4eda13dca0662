/* checkpoint.h: one HDF5 file per checkpoint, written atomically, verified on open.
 *
 * Layout (format 2; readable with h5dump and h5py, no byte layout to know):
 *   /<group>/<tensor name>   float32 datasets with the tensor's shape, Fletcher32 checksum,
 *                            one group per buffer: "params", "adam_m", "adam_v", "momentum",
 *                            "ema", ... (the caller names them)
 *   /train_state, /job_state the training state as named, typed fields (ckpt_field): a scalar
 *                            is an attribute of its group, an array a dataset in it; which
 *                            fields there are is the caller's table (core/train_state.c)
 *   attributes on "/": format_version (int), job (string), config (string, the resolved
 *   config text), metrics (string, JSON of the last logged metrics). Strings are
 *   fixed-length UTF-8 (h5py reads them as bytes).
 *
 *   Format 1 (read, never written) kept the state as attributes on "/" (step, epoch,
 *   step_in_epoch, world_size, lr and extras), /rng_states and a byte blob /job_state;
 *   ckpt_read_field reads those too, with group "" (the root).
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

#define CKPT_FORMAT_VERSION 2

typedef struct ckpt_tensor {
    const char *group; /* "params", "adam_m", ... */
    const char *name;  /* "conv0.weight"; may contain '.' but not '/' */
    int ndim;
    int shape[4];
    float *data;       /* written from, or read into */
} ckpt_tensor;

typedef enum { CKPT_I32, CKPT_I64, CKPT_F64, CKPT_U64, CKPT_U8 } ckpt_type;

/* One named, typed value of the training state: a scalar attribute of GROUP (ndim 0) or a
 * dataset GROUP/NAME of 1 or 2 dimensions (empty allowed). */
typedef struct ckpt_field {
    const char *group; /* "train_state", "job_state"; "" = the root (format 1 only) */
    const char *name;
    ckpt_type type;
    int ndim;          /* 0, 1 or 2 */
    int64_t dims[2];
    void *data;        /* write: read from; read: written into (see ckpt_read_field) */
} ckpt_field;

typedef struct ckpt_meta {
    char job[32];
    int format_version;       /* read: the file's (1 or 2); ckpt_write writes the current one */
    const char *config_text;  /* write: borrowed; read: owned by the ckpt handle */
    const char *metrics_json; /* likewise; may be NULL/"" */
    const ckpt_field *fields; /* write: the training state */
    int nfields;
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
 * otherwise. Both formats open (meta->format_version says which). */
ckpt *ckpt_open(const char *path, char *err, size_t errlen);
const ckpt_meta *ckpt_get_meta(const ckpt *c);
const char *ckpt_path(const ckpt *c);
/* Reads GROUP/NAME into t->data; the shape must equal t->shape (message names the tensor,
 * the checkpoint's shape and the expected one). */
int ckpt_read(ckpt *c, const ckpt_tensor *t, char *err, size_t errlen);
int ckpt_has(const ckpt *c, const char *group, const char *name);
/* Reads a field: f->type is the type wanted (HDF5 converts integers and floats), f->ndim must
 * match the file's. For an array, with f->data NULL the data is malloc'd (the caller frees
 * it) and f->dims set to the stored shape; with f->data set, f->dims must equal the stored
 * shape. -1 with a message naming the file and the field otherwise ("missing", a shape). */
int ckpt_read_field(ckpt *c, ckpt_field *f, char *err, size_t errlen);
/* Whether the field is in the file (an attribute for ndim 0, else a dataset). */
int ckpt_has_field(const ckpt *c, const ckpt_field *f);
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
