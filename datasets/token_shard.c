/* token_shard.c: one rank's contiguous range of /SPLIT/tokens, read window by window.
 *
 * Unlike image shards, token ranges are not loaded whole: a corpus may not fit in memory,
 * and training reads short random windows. The dataset stays open between reads, and its
 * chunk cache is sized to hold the rank's whole range when that is modest, so after the
 * first pass over the data each window is a memory copy. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "ds_util.h"
#include "image_shard.h" /* shard_begin: the same balanced partition as the image shards */
#include "tokens.h"

/* Enough for the range of a small corpus (tinyshakespeare's train split is 2 MB), bounded
 * so that a large corpus does not claim gigabytes per rank. */
#define CACHE_MAX_BYTES (64u << 20)
/* HDF5 hashes 1-D chunks by index modulo the slot count, so any run of consecutive chunks
 * shorter than this prime (a range of up to 1.3 GB at 128 KB chunks) never collides. */
#define CACHE_SLOTS 10007

struct token_shard {
    char *path;
    char dpath[300]; /* "/SPLIT/tokens", for messages */
    hid_t file, dset, fspace;
    int wide; /* uint32 in the file, else uint16 */
    int rank, vocab;
    long total, begin, size;
    void *buf; /* one window in the file's width, before widening to int32 */
    size_t buf_bytes;
};

typedef struct {
    const char *path;
    const char *dpath;
    char *err;
    size_t errlen;
} opener;

/* ---- opening and validating -------------------------------------------------------- */

static int read_vocab(const opener *o, hid_t file, int *vocab) {
    char why[256];
    int64_t v;
    if (h5_attr_read_i64(file, "vocab_size", &v, why, sizeof why) != 0)
        return ds_fail(o->err, o->errlen, "%s: attribute 'vocab_size' on /: %s: expected the vocabulary size "
                       "(a file from dtrain prepare text)", o->path, why);
    if (v < 1 || v > INT_MAX)
        return ds_fail(o->err, o->errlen, "%s: vocab_size %lld: expected 1 to %d", o->path, (long long)v, INT_MAX);
    *vocab = (int)v;
    return 0;
}

static int check_type(const opener *o, hid_t dset, int *wide) {
    hid_t type = H5Dget_type(dset);
    if (type < 0) return ds_fail(o->err, o->errlen, "%s: %s: cannot read its type", o->path, o->dpath);
    size_t size = H5Tget_size(type);
    int ok = H5Tget_class(type) == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_NONE && (size == 2 || size == 4);
    char got[32];
    h5_type_name(type, got, sizeof got);
    H5Tclose(type);
    if (!ok) return ds_fail(o->err, o->errlen, "%s: %s: expected uint16 or uint32 token ids, got %s", o->path,
                            o->dpath, got);
    *wide = size == 4;
    return 0;
}

static int check_shape(const opener *o, hid_t dset, long *total) {
    hid_t space = H5Dget_space(dset);
    int ndims = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t dims[1] = {0};
    if (ndims == 1) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (ndims != 1)
        return ds_fail(o->err, o->errlen, "%s: %s: expected a 1-D array of token ids, got rank %d", o->path,
                       o->dpath, ndims);
    if (dims[0] > LONG_MAX) return ds_fail(o->err, o->errlen, "%s: %s: too many tokens", o->path, o->dpath);
    *total = (long)dims[0];
    return 0;
}

/* Bytes per chunk, or 0 for a contiguous dataset (which needs no cache). */
static size_t chunk_bytes(hid_t dset, int wide) {
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t chunk[1] = {0};
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) H5Pget_chunk(dcpl, 1, chunk);
    if (dcpl >= 0) H5Pclose(dcpl);
    return (size_t)chunk[0] * (wide ? 4 : 2);
}

/* Opens the dataset, checks it, sets the shard's geometry, and closes it again: the chunk
 * cache can only be sized at open time, once the chunk size and range are known. */
static int inspect(token_shard *s, const opener *o, int world, size_t *chunk) {
    if (!h5_path_exists(s->file, o->dpath))
        return ds_fail(o->err, o->errlen, "%s: %s: not found: expected a 1-D uint16/uint32 token dataset", o->path,
                       o->dpath);
    hid_t dset = H5Dopen2(s->file, o->dpath, H5P_DEFAULT);
    if (dset < 0)
        return ds_fail(o->err, o->errlen, "%s: %s: not a dataset: expected a 1-D uint16/uint32 token dataset",
                       o->path, o->dpath);
    int rc = check_type(o, dset, &s->wide);
    if (rc == 0) rc = check_shape(o, dset, &s->total);
    if (rc == 0) *chunk = chunk_bytes(dset, s->wide);
    H5Dclose(dset);
    s->begin = shard_begin(s->rank, world, s->total);
    s->size = shard_begin(s->rank + 1, world, s->total) - s->begin;
    return rc;
}

static int open_cached(token_shard *s, const opener *o, size_t chunk) {
    size_t range = (size_t)s->size * (s->wide ? 4 : 2);
    /* the range plus the partial chunks at either end, since chunks straddle rank borders */
    size_t want = range + 2 * chunk, bytes = want < CACHE_MAX_BYTES ? want : CACHE_MAX_BYTES;
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    int ok = dapl >= 0 && (chunk == 0 || H5Pset_chunk_cache(dapl, CACHE_SLOTS, bytes, H5D_CHUNK_CACHE_W0_DEFAULT) >= 0);
    if (ok) s->dset = H5Dopen2(s->file, o->dpath, dapl);
    if (dapl >= 0) H5Pclose(dapl);
    if (ok && s->dset >= 0) s->fspace = H5Dget_space(s->dset);
    if (!ok || s->dset < 0 || s->fspace < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        return ds_fail(o->err, o->errlen, "%s: %s: cannot open: %s", o->path, o->dpath, why);
    }
    return 0;
}

static int load(token_shard *s, const opener *o, int world) {
    if (ds_check_readable(o->path, o->err, o->errlen) != 0) return -1;
    s->file = H5Fopen(o->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        return ds_fail(o->err, o->errlen, "%s: cannot open as HDF5: %s", o->path, why);
    }
    size_t chunk = 0;
    int rc = inspect(s, o, world, &chunk);
    if (rc == 0) rc = read_vocab(o, s->file, &s->vocab);
    if (rc == 0) rc = open_cached(s, o, chunk);
    return rc;
}

static int check_args(const char *path, const char *split, int rank, int world, char *err, size_t errlen) {
    if (world < 1 || rank < 0 || rank >= world)
        return ds_fail(err, errlen, "%s: rank %d of world %d: expected 0 <= rank < world", path, rank, world);
    if (!split || !split[0] || strchr(split, '/') || strlen(split) > 200)
        return ds_fail(err, errlen, "%s: split '%s': expected a group name such as train or val", path,
                       split ? split : "(null)");
    return 0;
}

token_shard *token_shard_open(const char *path, const char *split, int rank, int world, char *err,
                              size_t errlen) {
    if (check_args(path, split, rank, world, err, errlen) != 0) return NULL;
    token_shard *s = calloc(1, sizeof *s);
    if (s) s->path = strdup(path);
    if (!s || !s->path) {
        free(s);
        ds_fail(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->file = s->dset = s->fspace = H5I_INVALID_HID;
    s->rank = rank;
    snprintf(s->dpath, sizeof s->dpath, "/%s/tokens", split);
    opener o = {path, s->dpath, err, errlen};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = load(s, &o, world);
    h5_quiet_end(&q);
    if (rc != 0) {
        token_shard_close(s);
        return NULL;
    }
    return s;
}

void token_shard_close(token_shard *s) {
    if (!s) return;
    if (s->fspace >= 0) H5Sclose(s->fspace);
    if (s->dset >= 0) H5Dclose(s->dset);
    if (s->file >= 0) H5Fclose(s->file);
    free(s->buf);
    free(s->path);
    free(s);
}

long token_shard_size(const token_shard *s) { return s->size; }
long token_shard_begin(const token_shard *s) { return s->begin; }
long token_shard_total(const token_shard *s) { return s->total; }
int token_shard_vocab_size(const token_shard *s) { return s->vocab; }

/* ---- reading ----------------------------------------------------------------------- */

static int grow_buf(token_shard *s, size_t bytes) {
    if (bytes <= s->buf_bytes) return 0;
    void *b = realloc(s->buf, bytes);
    if (!b) return -1;
    s->buf = b;
    s->buf_bytes = bytes;
    return 0;
}

/* Global tokens [first, first + n) into s->buf, in the file's width. */
static int read_window(token_shard *s, long first, long n, char *err, size_t errlen) {
    hsize_t start[1] = {(hsize_t)first}, count[1] = {(hsize_t)n};
    hid_t mspace = H5Screate_simple(1, count, NULL);
    int ok = mspace >= 0 && H5Sselect_hyperslab(s->fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(s->dset, s->wide ? H5T_NATIVE_UINT32 : H5T_NATIVE_UINT16, mspace, s->fspace, H5P_DEFAULT,
                     s->buf) >= 0;
    char why[512] = "";
    int corrupt = !ok && h5_error_is_checksum();
    if (!ok) h5_last_error(why, sizeof why);
    if (mspace >= 0) H5Sclose(mspace);
    /* a chunk's Fletcher32 checksum failed (files from prepare text carry one per chunk;
     * older files without the filter read as before): the bytes on disk changed */
    if (corrupt) {
        ds_fail(err, errlen, "%s: %s: checksum mismatch (file corrupted) in tokens %ld..%ld", s->path, s->dpath,
                first, first + n - 1);
        return TOKEN_READ_BAD_DATA;
    }
    if (!ok)
        return ds_fail(err, errlen, "%s: %s: cannot read tokens %ld..%ld: %s", s->path, s->dpath, first,
                       first + n - 1, why);
    return 0;
}

/* Widens to int32, checking every id against the vocabulary: an id beyond it would index
 * past the embedding table, so a corrupt file must fail here, not in the model. */
static int widen(const token_shard *s, long first, long n, int32_t *out, char *err, size_t errlen) {
    const uint16_t *u16 = s->buf;
    const uint32_t *u32 = s->buf;
    for (long i = 0; i < n; i++) {
        uint32_t id = s->wide ? u32[i] : u16[i];
        if (id >= (uint32_t)s->vocab) {
            ds_fail(err, errlen, "%s: %s: token %ld is id %u: expected an id below vocab_size %d (corrupt file?)",
                    s->path, s->dpath, first + i, (unsigned)id, s->vocab);
            return TOKEN_READ_BAD_DATA;
        }
        out[i] = (int32_t)id;
    }
    return 0;
}

int token_shard_read(token_shard *s, long pos, long n, int32_t *out, char *err, size_t errlen) {
    if (pos < 0 || n < 0 || pos > s->size - n)
        return ds_fail(err, errlen, "%s: %s: %ld tokens at %ld: outside rank %d's range of %ld tokens", s->path,
                       s->dpath, n, pos, s->rank, s->size);
    if (n == 0) return 0;
    if (grow_buf(s, (size_t)n * (s->wide ? 4 : 2)) != 0)
        return ds_fail(err, errlen, "%s: %s: out of memory for %ld tokens", s->path, s->dpath, n);
    long first = s->begin + pos;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = read_window(s, first, n, err, errlen);
    h5_quiet_end(&q);
    return rc == 0 ? widen(s, first, n, out, err, errlen) : rc;
}
