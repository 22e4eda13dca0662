/* prepare_stream.c: `dtrain prepare text` into a token directory (layout in tokens.h):
 * the inputs are streamed chunk by chunk (text_stream.h), encoded, and appended to shard
 * files of shard_tokens tokens each; the index is written last, and the directory is
 * built under a temporary name and renamed into place only when complete.
 *
 * Memory: one text chunk (TEXT_CHUNK_BYTES, 4 MiB) and its ids, a copy of the chunk when
 * it holds invalid UTF-8, one HDF5 chunk of ids being filled, the tokenizer and its cache
 * of encoded pieces (bpe.c: at most 2^18 pieces): about 64 MiB plus the vocabulary,
 * whatever the size of the corpus. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "bpe.h"
#include "ds_util.h"
#include "text_stream.h"
#include "token_meta.h"
#include "tokens.h"

/* as in prepare_text.c: 64K ids per HDF5 chunk, each with a Fletcher32 checksum */
#define CHUNK_TOKENS 65536

typedef struct {
    const text_job *tj;
    char *err;
    size_t errlen;
    char *tmp;     /* the directory being built */
    int wide;      /* uint32 ids, else uint16 */
    hid_t file, dset;
    int64_t in_shard; /* ids written to the open shard */
    int nshards, capshards;
    int64_t *sizes;
    int64_t total;
    void *buf;     /* up to CHUNK_TOKENS ids in the file's width, not yet written */
    size_t nbuf;
} writer;

static int h5_fail(const writer *w, const char *what) {
    char why[512];
    h5_last_error(why, sizeof why);
    return ds_fail(w->err, w->errlen, "%s: cannot write %s: %s", w->tj->out, what, why);
}

/* ---- shard files ----------------------------------------------------------------------- */

static int open_shard(writer *w) {
    char *path = token_dir_file(w->tmp, w->nshards);
    if (!path) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out);
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {CHUNK_TOKENS};
    hid_t space = H5Screate_simple(1, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int ok = w->file >= 0 && space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 &&
             H5Pset_fletcher32(dcpl) >= 0 &&
             (w->dset = H5Dcreate2(w->file, "tokens", w->wide ? H5T_STD_U32LE : H5T_STD_U16LE, space, H5P_DEFAULT,
                                   dcpl, H5P_DEFAULT)) >= 0;
    int rc = ok ? 0 : h5_fail(w, path);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    free(path);
    w->in_shard = 0;
    return rc;
}

static int flush_buf(writer *w) {
    if (w->nbuf == 0) return 0;
    hsize_t start[1] = {(hsize_t)w->in_shard}, count[1] = {w->nbuf}, size[1] = {(hsize_t)w->in_shard + w->nbuf};
    hid_t fspace = H5I_INVALID_HID, mspace = H5Screate_simple(1, count, NULL);
    int ok = mspace >= 0 && H5Dset_extent(w->dset, size) >= 0 && (fspace = H5Dget_space(w->dset)) >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dwrite(w->dset, w->wide ? H5T_NATIVE_UINT32 : H5T_NATIVE_UINT16, mspace, fspace, H5P_DEFAULT,
                      w->buf) >= 0;
    if (fspace >= 0) H5Sclose(fspace);
    if (mspace >= 0) H5Sclose(mspace);
    if (!ok) return h5_fail(w, "a shard's tokens");
    w->in_shard += (int64_t)w->nbuf;
    w->total += (int64_t)w->nbuf;
    w->nbuf = 0;
    return 0;
}

static int close_shard(writer *w) {
    if (w->file < 0) return 0;
    int rc = flush_buf(w);
    if (rc == 0 && (h5_attr_write_str(w->file, "format", TOKEN_SHARD_FORMAT) != 0 ||
                    h5_attr_write_i64(w->file, "shard", w->nshards) != 0 ||
                    h5_attr_write_i64(w->file, "first", w->total - w->in_shard) != 0))
        rc = h5_fail(w, "a shard's attributes");
    H5Dclose(w->dset);
    if (H5Fclose(w->file) < 0 && rc == 0) rc = h5_fail(w, "a shard (close)");
    w->file = w->dset = H5I_INVALID_HID;
    if (rc != 0) return rc;
    if (w->nshards == w->capshards) {
        int cap = w->capshards ? w->capshards * 2 : 64;
        int64_t *s = realloc(w->sizes, (size_t)cap * sizeof *s);
        if (!s) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out);
        w->sizes = s;
        w->capshards = cap;
    }
    w->sizes[w->nshards++] = w->in_shard;
    return 0;
}

/* Appends one id: into the buffer, which goes to the shard when full; a shard that
 * reaches shard_tokens is closed, and the next id opens another. */
static int append(writer *w, uint32_t id) {
    if (w->file < 0 && open_shard(w) != 0) return -1;
    if (w->wide)
        ((uint32_t *)w->buf)[w->nbuf++] = id;
    else
        ((uint16_t *)w->buf)[w->nbuf++] = (uint16_t)id;
    if (w->nbuf == CHUNK_TOKENS || w->in_shard + (int64_t)w->nbuf == w->tj->shard_tokens) {
        if (flush_buf(w) != 0) return -1;
        if (w->in_shard == w->tj->shard_tokens) return close_shard(w);
    }
    return 0;
}

/* ---- the index ---------------------------------------------------------------------------- */

static int write_split(writer *w, hid_t file, const char *name, int64_t first, int64_t count) {
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = g >= 0 && h5_attr_write_i64(g, "first", first) == 0 && h5_attr_write_i64(g, "count", count) == 0;
    if (g >= 0) H5Gclose(g);
    return ok ? 0 : h5_fail(w, name);
}

static int write_sizes(writer *w, hid_t file) {
    hsize_t dims[1] = {(hsize_t)w->nshards};
    hid_t space = H5Screate_simple(1, dims, NULL), dset = H5I_INVALID_HID;
    int ok = space >= 0 &&
             (dset = H5Dcreate2(file, "shard_sizes", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >=
                 0 &&
             H5Dwrite(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->sizes) >= 0;
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : h5_fail(w, "/shard_sizes");
}

static int write_index(writer *w, const token_meta *m, int64_t ntrain) {
    char *path = token_dir_file(w->tmp, -1);
    if (!path) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int rc = file >= 0 ? 0 : h5_fail(w, "the index");
    const char *source = w->tj->nin == 1 ? w->tj->in[0] : "several inputs";
    if (rc == 0 && (token_meta_write(file, TOKEN_INDEX_FORMAT, source, m) != 0 ||
                    h5_attr_write_i64(file, "shard_tokens", w->tj->shard_tokens) != 0))
        rc = h5_fail(w, "the index's attributes");
    if (rc == 0) rc = write_sizes(w, file);
    if (rc == 0) rc = write_split(w, file, "train", 0, ntrain);
    if (rc == 0) rc = write_split(w, file, "val", ntrain, w->total - ntrain);
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) rc = h5_fail(w, "the index (close)");
    free(path);
    return rc;
}

/* ---- the directory: built aside, synced, renamed over the old one --------------------------- */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) break;
        snprintf(p, len, "%s/%s", dir, e->d_name);
        remove(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int sync_dir_files(writer *w) {
    for (int i = -1; i < w->nshards; i++) {
        char *p = token_dir_file(w->tmp, i);
        FILE *f = p ? fopen(p, "rb") : NULL;
        int ok = f && fsync(fileno(f)) == 0;
        if (f) fclose(f);
        free(p);
        if (!ok) return ds_fail(w->err, w->errlen, "%s: cannot sync the shards: %s", w->tj->out, strerror(errno));
    }
    return 0;
}

/* An existing output is replaced only if it is a token directory (it has an index), so a
 * mistyped --out cannot delete an unrelated directory. */
static int check_out(const text_job *tj, char *err, size_t errlen) {
    struct stat st;
    if (stat(tj->out, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode))
        return ds_fail(err, errlen, "%s: exists and is not a directory: expected a token directory", tj->out);
    char *index = token_dir_file(tj->out, -1);
    int ok = index && stat(index, &st) == 0;
    DIR *d = ok ? NULL : opendir(tj->out);
    int empty = 1;
    struct dirent *e;
    while (d && (e = readdir(d))) empty &= strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    if (d) closedir(d);
    free(index);
    if (!ok && !empty)
        return ds_fail(err, errlen, "%s: exists and is not a token directory (no %s): expected a new or empty "
                       "directory", tj->out, TOKEN_INDEX_NAME);
    return 0;
}

static int put_in_place(writer *w) {
    if (sync_dir_files(w) != 0) return -1;
    size_t len = strlen(w->tj->out) + 32;
    char *old = malloc(len);
    if (!old) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out);
    snprintf(old, len, "%s.old.%ld", w->tj->out, (long)getpid());
    struct stat st;
    int had = stat(w->tj->out, &st) == 0, rc = 0;
    if (had && rename(w->tj->out, old) != 0)
        rc = ds_fail(w->err, w->errlen, "%s: cannot move the old directory aside: %s", w->tj->out, strerror(errno));
    if (rc == 0 && rename(w->tmp, w->tj->out) != 0) {
        rc = ds_fail(w->err, w->errlen, "%s: cannot rename %s into place: %s", w->tj->out, w->tmp, strerror(errno));
        if (had) rename(old, w->tj->out);
    }
    if (rc == 0 && had) remove_tree(old);
    free(old);
    return rc;
}

/* ---- encoding the stream ---------------------------------------------------------------------- */

typedef struct {
    bpe *b; /* NULL: the byte tokenizer */
    idvec ids;
} encoder;

static int encode_chunk(writer *w, encoder *e, const char *chunk, size_t len) {
    if (!e->b) {
        for (size_t i = 0; i < len; i++)
            if (append(w, (unsigned char)chunk[i]) != 0) return -1;
        return 0;
    }
    e->ids.n = 0;
    if (bpe_encode(e->b, chunk, len, &e->ids) != 0) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out);
    for (size_t i = 0; i < e->ids.n; i++)
        if (append(w, (uint32_t)e->ids.v[i]) != 0) return -1;
    return 0;
}

static int stream(writer *w, encoder *e) {
    int checks = TEXT_CHECK_EMPTY | (e->b ? TEXT_CHECK_NUL : 0);
    text_stream *ts = text_stream_open(w->tj->in, w->tj->nin, checks, w->err, w->errlen);
    if (!ts) return PREPARE_BAD_INPUT;
    const char *chunk;
    size_t len;
    int r, rc = 0;
    uint64_t next_report = 256u << 20;
    while (rc == 0 && (r = text_stream_next(ts, &chunk, &len, w->err, w->errlen)) > 0) {
        if (encode_chunk(w, e, chunk, len) != 0) rc = PREPARE_FAILED;
        if (text_stream_done(ts) >= next_report) {
            printf("prepare: %.1f MB read, %lld tokens\n", (double)text_stream_done(ts) / 1e6,
                   (long long)(w->total + (int64_t)w->nbuf));
            fflush(stdout);
            next_report += 256u << 20;
        }
    }
    if (rc == 0 && r < 0) rc = PREPARE_BAD_INPUT;
    text_stream_close(ts);
    return rc;
}

/* train = floor(n (1 - val_fraction)) as in prepare_text.c (within 1e-9 of an integer counts
 * as that integer) */
static int64_t train_count(int64_t n, double val_fraction) {
    double x = (double)n * (1.0 - val_fraction), r = nearbyint(x);
    if (fabs(x - r) <= 1e-9 * (x > 1.0 ? x : 1.0)) return (int64_t)r;
    return (int64_t)floor(x);
}

static int finish(writer *w, const token_meta *m) {
    if (close_shard(w) != 0) return PREPARE_FAILED;
    int64_t ntrain = train_count(w->total, w->tj->val_fraction);
    if (ntrain < 1 || ntrain >= w->total) {
        ds_fail(w->err, w->errlen, "%s: %lld tokens with val_fraction %g leave the %s split empty: expected more "
                "text or another val_fraction", w->tj->nin == 1 ? w->tj->in[0] : w->tj->out, (long long)w->total,
                w->tj->val_fraction, ntrain < 1 ? "train" : "val");
        return PREPARE_BAD_INPUT;
    }
    if (write_index(w, m, ntrain) != 0 || put_in_place(w) != 0) return PREPARE_FAILED;
    printf("prepare: %lld tokens (%lld train, %lld val) in %d shard%s\n", (long long)w->total, (long long)ntrain,
           (long long)(w->total - ntrain), w->nshards, w->nshards == 1 ? "" : "s");
    return PREPARE_OK;
}

static int run(writer *w, encoder *e, const token_meta *m) {
    size_t len = strlen(w->tj->out) + 32;
    if (!(w->tmp = malloc(len))) return ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out), PREPARE_FAILED;
    snprintf(w->tmp, len, "%s.tmp.%ld", w->tj->out, (long)getpid());
    if (mkdir(w->tmp, 0777) != 0) {
        ds_fail(w->err, w->errlen, "%s: cannot create %s: %s", w->tj->out, w->tmp, strerror(errno));
        return PREPARE_FAILED;
    }
    w->buf = malloc(CHUNK_TOKENS * sizeof(uint32_t));
    int rc = w->buf ? stream(w, e) : (ds_fail(w->err, w->errlen, "%s: out of memory", w->tj->out), PREPARE_FAILED);
    if (rc == 0) rc = finish(w, m);
    if (w->file >= 0) {
        H5Dclose(w->dset);
        H5Fclose(w->file);
    }
    if (rc != 0) remove_tree(w->tmp);
    return rc;
}

int prepare_text_dir(const text_job *tj, bpe *b, const token_meta *m, char *err, size_t errlen) {
    if (check_out(tj, err, errlen) != 0) return PREPARE_BAD_INPUT;
    writer w = {tj, err, errlen, NULL, m->vocab > U16_VOCAB_MAX, H5I_INVALID_HID, H5I_INVALID_HID, 0, 0, 0,
                NULL, 0, NULL, 0};
    encoder e = {b, {0}};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = run(&w, &e, m);
    h5_quiet_end(&q);
    idvec_free(&e.ids);
    free(w.sizes);
    free(w.buf);
    free(w.tmp);
    return rc;
}
