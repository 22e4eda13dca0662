/* token_shard.c: one rank's contiguous range of a split, read window by window, from a
 * token file (/SPLIT/tokens) or a token directory (the split's range of the shard files'
 * ids, concatenated in order; tokens.h).
 *
 * Unlike image shards, token ranges are not loaded whole: a corpus may not fit in memory,
 * and training reads short random windows. The rank's range is a list of pieces, one per
 * file it overlaps; only those files are opened, and they stay open between reads. Each
 * piece's chunk cache holds its part of the range when that is modest, so after the first
 * pass over the data each window is a memory copy. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "ds_util.h"
#include "h5_check.h"
#include "image_shard.h" /* shard_begin: the same balanced partition as the image shards */
#include "token_meta.h"
#include "tokens.h"

/* Enough for the range of a small corpus (tinyshakespeare's train split is 2 MB), bounded
 * so that a large corpus does not claim gigabytes per rank. */
#define CACHE_MAX_BYTES (64u << 20)
/* HDF5 hashes 1-D chunks by index modulo the slot count, so any run of consecutive chunks
 * shorter than this prime (a range of up to 1.3 GB at 128 KB chunks) never collides. */
#define CACHE_SLOTS 10007

/* The part of the rank's range that lies in one file. */
typedef struct {
    char *path;      /* the file, for messages */
    const char *dpath; /* its dataset */
    hid_t file, dset, fspace;
    long local;      /* where the piece starts in the rank's range */
    long ds_off;     /* ... and in the file's dataset */
    long count;
} piece;

struct token_shard {
    char *path;
    char dpath[300]; /* "/SPLIT/tokens" in a file; "/tokens" in a directory's shards */
    int rank, vocab;
    long total, begin, size;
    piece *pieces;
    int npieces;
    uint32_t *buf; /* one window, before the vocabulary check */
    size_t buf_len;
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
    /* the gpt job allocates an embedding row per id: the bound is BPE_MAX_VOCAB, as for
     * its vocab_size key and a directory's index */
    if (v < 1 || v > BPE_MAX_VOCAB)
        return ds_fail(o->err, o->errlen, "%s: attribute 'vocab_size' on /: %lld: expected 1 to %d", o->path,
                       (long long)v, BPE_MAX_VOCAB);
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

/* Checks the dataset of an open piece file and returns its length, its width and its
 * chunk size; the dataset is closed again, because the chunk cache can only be sized at
 * open time, once the chunk size and range are known. */
static int inspect(const opener *o, hid_t file, long *total, int *wide, size_t *chunk) {
    if (!h5_path_exists(file, o->dpath))
        return ds_fail(o->err, o->errlen, "%s: %s: not found: expected a 1-D uint16/uint32 token dataset", o->path,
                       o->dpath);
    hid_t dset = H5Dopen2(file, o->dpath, H5P_DEFAULT);
    if (dset < 0)
        return ds_fail(o->err, o->errlen, "%s: %s: not a dataset: expected a 1-D uint16/uint32 token dataset",
                       o->path, o->dpath);
    int rc = check_type(o, dset, wide);
    if (rc == 0) rc = check_shape(o, dset, total);
    if (rc == 0) rc = h5_check_storage(dset, o->path, o->dpath, o->err, o->errlen);
    if (rc == 0) *chunk = chunk_bytes(dset, *wide);
    H5Dclose(dset);
    return rc;
}

static int open_cached(piece *p, const opener *o, size_t chunk, int wide, size_t cache_max) {
    /* the range plus the partial chunks at either end, since chunks straddle rank borders;
     * chunk is at most H5_CHECK_MAX_CHUNK_BYTES, and a range beyond cache_max needs no sum */
    size_t range = (uint64_t)p->count < cache_max ? (size_t)p->count * (wide ? 4 : 2) : cache_max;
    size_t want = range + 2 * chunk, bytes = want < cache_max ? want : cache_max;
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    int ok = dapl >= 0 && (chunk == 0 || H5Pset_chunk_cache(dapl, CACHE_SLOTS, bytes, H5D_CHUNK_CACHE_W0_DEFAULT) >= 0);
    if (ok) p->dset = H5Dopen2(p->file, o->dpath, dapl);
    if (dapl >= 0) H5Pclose(dapl);
    if (ok && p->dset >= 0) p->fspace = H5Dget_space(p->dset);
    if (!ok || p->dset < 0 || p->fspace < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        return ds_fail(o->err, o->errlen, "%s: %s: cannot open: %s", o->path, o->dpath, why);
    }
    return 0;
}

static hid_t open_h5(const opener *o) {
    if (ds_check_readable(o->path, o->err, o->errlen) != 0) return H5I_INVALID_HID;
    hid_t file = H5Fopen(o->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        ds_fail(o->err, o->errlen, "%s: cannot open as HDF5: %s", o->path, why);
    }
    return file;
}

static piece *add_piece(token_shard *s, const char *path, const opener *o) {
    piece *more = realloc(s->pieces, ((size_t)s->npieces + 1) * sizeof *more);
    if (!more) {
        ds_fail(o->err, o->errlen, "%s: out of memory", path);
        return NULL;
    }
    s->pieces = more;
    piece *p = &s->pieces[s->npieces];
    *p = (piece){NULL, s->dpath, H5I_INVALID_HID, H5I_INVALID_HID, H5I_INVALID_HID, 0, 0, 0};
    if (!(p->path = strdup(path))) {
        ds_fail(o->err, o->errlen, "%s: out of memory", path);
        return NULL;
    }
    s->npieces++;
    return p;
}

/* A token file: one piece, the rank's range of /SPLIT/tokens. */
static int load_file(token_shard *s, const opener *o, int world) {
    piece *p = add_piece(s, o->path, o);
    if (!p) return -1;
    if ((p->file = open_h5(o)) < 0) return -1;
    size_t chunk = 0;
    int wide = 0;
    int rc = inspect(o, p->file, &s->total, &wide, &chunk);
    s->begin = shard_begin(s->rank, world, s->total);
    s->size = shard_begin(s->rank + 1, world, s->total) - s->begin;
    p->ds_off = s->begin;
    p->count = s->size;
    if (rc == 0) rc = read_vocab(o, p->file, &s->vocab);
    if (rc == 0) rc = open_cached(p, o, chunk, wide, CACHE_MAX_BYTES);
    return rc;
}

/* One shard file of a directory: [lo, hi) of its ids belong to the rank's range. */
static int open_dir_piece(token_shard *s, const opener *dir, int i, const token_index *ix, long lo, long hi,
                          size_t cache_max) {
    char *path = token_dir_file(dir->path, i);
    if (!path) return ds_fail(dir->err, dir->errlen, "%s: out of memory", dir->path);
    opener o = {path, s->dpath, dir->err, dir->errlen};
    piece *p = add_piece(s, path, &o);
    int rc = p ? 0 : -1;
    if (rc == 0) {
        p->local = s->npieces > 1 ? p[-1].local + p[-1].count : 0;
        p->ds_off = lo;
        p->count = hi - lo;
        if ((p->file = open_h5(&o)) < 0) rc = -1;
    }
    long n = 0;
    int wide = 0;
    size_t chunk = 0;
    if (rc == 0) rc = inspect(&o, p->file, &n, &wide, &chunk);
    if (rc == 0 && n != ix->sizes[i])
        rc = ds_fail(o.err, o.errlen, "%s: %s: %ld tokens: expected %lld, as %s says", path, s->dpath, n,
                     (long long)ix->sizes[i], TOKEN_INDEX_NAME);
    if (rc == 0) rc = open_cached(p, &o, chunk, wide, cache_max);
    free(path);
    return rc;
}

/* A token directory: the split is [first, first + count) of the shards' ids in order; the
 * rank's part of it is cut into pieces at shard borders, and only those shards are opened. */
static int load_dir(token_shard *s, const opener *o, const char *split, int world) {
    token_index ix;
    if (token_index_read(o->path, split, &ix, o->err, o->errlen) != 0) return -1;
    s->vocab = ix.vocab;
    s->total = (long)ix.count;
    s->begin = shard_begin(s->rank, world, s->total);
    s->size = shard_begin(s->rank + 1, world, s->total) - s->begin;
    long lo = (long)ix.first + s->begin, hi = lo + s->size, at = 0;
    int overlapping = 0;
    for (int i = 0; i < ix.nshards; at += (long)ix.sizes[i], i++) overlapping += at < hi && at + ix.sizes[i] > lo;
    size_t cache_max = CACHE_MAX_BYTES / (size_t)(overlapping > 0 ? overlapping : 1);
    if (cache_max < (1u << 20)) cache_max = 1u << 20;
    int rc = 0;
    at = 0;
    for (int i = 0; rc == 0 && i < ix.nshards; at += (long)ix.sizes[i], i++) {
        long a = lo > at ? lo : at, b = hi < at + ix.sizes[i] ? hi : at + (long)ix.sizes[i];
        if (a < b) rc = open_dir_piece(s, o, i, &ix, a - at, b - at, cache_max);
    }
    token_index_free(&ix);
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
    s->rank = rank;
    int dir = token_path_is_dir(path);
    if (dir)
        snprintf(s->dpath, sizeof s->dpath, "/tokens");
    else
        snprintf(s->dpath, sizeof s->dpath, "/%s/tokens", split);
    opener o = {path, s->dpath, err, errlen};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = dir ? load_dir(s, &o, split, world) : load_file(s, &o, world);
    h5_quiet_end(&q);
    if (rc != 0) {
        token_shard_close(s);
        return NULL;
    }
    return s;
}

void token_shard_close(token_shard *s) {
    if (!s) return;
    for (int i = 0; i < s->npieces; i++) {
        piece *p = &s->pieces[i];
        if (p->fspace >= 0) H5Sclose(p->fspace);
        if (p->dset >= 0) H5Dclose(p->dset);
        if (p->file >= 0) H5Fclose(p->file);
        free(p->path);
    }
    free(s->pieces);
    free(s->buf);
    free(s->path);
    free(s);
}

long token_shard_size(const token_shard *s) { return s->size; }
long token_shard_begin(const token_shard *s) { return s->begin; }
long token_shard_total(const token_shard *s) { return s->total; }
int token_shard_vocab_size(const token_shard *s) { return s->vocab; }
int token_shard_file_count(const token_shard *s) { return s->npieces; }

/* ---- reading ----------------------------------------------------------------------- */

/* Ids [from, from + n) of piece p's dataset into out, widened to uint32 by HDF5. */
static int read_piece(token_shard *s, piece *p, long from, long n, uint32_t *out, char *err, size_t errlen) {
    hsize_t start[1] = {(hsize_t)from}, count[1] = {(hsize_t)n};
    hid_t mspace = H5Screate_simple(1, count, NULL);
    int ok = mspace >= 0 && H5Sselect_hyperslab(p->fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(p->dset, H5T_NATIVE_UINT32, mspace, p->fspace, H5P_DEFAULT, out) >= 0;
    char why[512] = "";
    int corrupt = !ok && h5_error_is_checksum();
    if (!ok) h5_last_error(why, sizeof why);
    if (mspace >= 0) H5Sclose(mspace);
    (void)s;
    /* a chunk's Fletcher32 checksum failed (files from prepare text carry one per chunk;
     * older files without the filter read as before): the bytes on disk changed */
    if (corrupt) {
        ds_fail(err, errlen, "%s: %s: checksum mismatch (file corrupted) in tokens %ld..%ld", p->path, p->dpath,
                from, from + n - 1);
        return TOKEN_READ_BAD_DATA;
    }
    if (!ok)
        return ds_fail(err, errlen, "%s: %s: cannot read tokens %ld..%ld: %s", p->path, p->dpath, from,
                       from + n - 1, why);
    return 0;
}

/* Rank-local tokens [pos, pos + n) into s->buf, piece by piece. */
static int read_range(token_shard *s, long pos, long n, char *err, size_t errlen) {
    for (int i = 0; i < s->npieces && n > 0; i++) {
        piece *p = &s->pieces[i];
        if (pos >= p->local + p->count) continue;
        long take = p->local + p->count - pos < n ? p->local + p->count - pos : n;
        int rc = read_piece(s, p, p->ds_off + (pos - p->local), take, s->buf + (s->buf_len - (size_t)n), err, errlen);
        if (rc != 0) return rc;
        pos += take;
        n -= take;
    }
    return 0;
}

/* Checks every id against the vocabulary: an id beyond it would index past the embedding
 * table, so a corrupt file must fail here, not in the model. */
static int check_ids(const token_shard *s, long pos, long n, int32_t *out, char *err, size_t errlen) {
    for (long i = 0; i < n; i++) {
        uint32_t id = s->buf[i];
        if (id >= (uint32_t)s->vocab) {
            ds_fail(err, errlen, "%s: %s: token %ld is id %u: expected an id below vocab_size %d (corrupt file?)",
                    s->path, s->dpath, s->begin + pos + i, (unsigned)id, s->vocab);
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
    if ((size_t)n > s->buf_len) {
        uint32_t *b = realloc(s->buf, (size_t)n * sizeof *b);
        if (!b) return ds_fail(err, errlen, "%s: %s: out of memory for %ld tokens", s->path, s->dpath, n);
        s->buf = b;
    }
    s->buf_len = (size_t)n;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = read_range(s, pos, n, err, errlen);
    h5_quiet_end(&q);
    return rc == 0 ? check_ids(s, pos, n, out, err, errlen) : rc;
}
