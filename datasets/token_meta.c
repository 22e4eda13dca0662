/* token_meta.c: see token_meta.h. */
#include "token_meta.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_util.h"
#include "h5_check.h"

/* ---- writing -------------------------------------------------------------------------- */

static int write_blob(hid_t group, const char *name, const char *data, size_t len) {
    hsize_t dims[1] = {len};
    hid_t space = H5Screate_simple(1, dims, NULL), dset = H5I_INVALID_HID;
    int ok = space >= 0 &&
             (dset = H5Dcreate2(group, name, H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             (len == 0 || H5Dwrite(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

int token_meta_write(hid_t file, const char *format, const char *source, const token_meta *m) {
    if (h5_attr_write_str(file, "format", format) != 0 || h5_attr_write_str(file, "tokenizer", m->kind) != 0 ||
        h5_attr_write_i64(file, "vocab_size", m->vocab) != 0 || h5_attr_write_str(file, "source", source) != 0)
        return -1;
    if (m->chars && h5_attr_write_str(file, "chars", m->chars) != 0) return -1;
    if (!m->vocab_json) return 0;
    hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    int rc = write_blob(g, "vocab.json", m->vocab_json, m->vocab_len);
    if (rc == 0) rc = write_blob(g, "merges.txt", m->merges, m->merges_len);
    H5Gclose(g);
    return rc;
}

/* ---- reading the BPE tokenizer ------------------------------------------------------- */

/* GPT-2's vocab.json is 1 MB; a vocabulary of BPE_MAX_VOCAB tokens stays well below this. */
#define BLOB_MAX_BYTES ((hssize_t)1 << 30)

/* The dataset at dpath must be a 1-D array of bytes, all of it written, at most
 * BLOB_MAX_BYTES long; its length goes to *n. */
static hid_t open_blob(hid_t file, const char *dpath, const char *path, hssize_t *n, char *err, size_t errlen) {
    if (!h5_path_exists(file, dpath)) {
        ds_fail(err, errlen, "%s: %s: not found: expected the BPE tokenizer's file (a uint8 array)", path, dpath);
        return H5I_INVALID_HID;
    }
    hid_t dset = H5Dopen2(file, dpath, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID, type = dset >= 0 ? H5Dget_type(dset) : -1;
    int ndims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    *n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int ok = ndims == 1 && type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1;
    char got[32] = "unreadable";
    if (type >= 0) h5_type_name(type, got, sizeof got);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    int rc = ok ? 0 : ds_fail(err, errlen, "%s: %s: %s of rank %d: expected a 1-D uint8 array (the BPE tokenizer's "
                              "file)", path, dpath, got, ndims);
    if (rc == 0 && (*n < 0 || *n > BLOB_MAX_BYTES))
        rc = ds_fail(err, errlen, "%s: %s: %lld bytes: expected at most %lld", path, dpath, (long long)*n,
                     (long long)BLOB_MAX_BYTES);
    if (rc == 0) rc = h5_check_storage(dset, path, dpath, err, errlen);
    if (rc != 0 && dset >= 0) H5Dclose(dset);
    return rc == 0 ? dset : H5I_INVALID_HID;
}

static char *read_blob(hid_t file, const char *dpath, const char *path, size_t *len, char *err, size_t errlen) {
    hssize_t n = 0;
    hid_t dset = open_blob(file, dpath, path, &n, err, errlen);
    if (dset < 0) return NULL;
    char *buf = malloc((size_t)n + 1);
    int ok = buf && (n == 0 || H5Dread(dset, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    if (!ok) {
        char why[256];
        h5_last_error(why, sizeof why);
        ds_fail(err, errlen, "%s: %s: cannot read: %s", path, dpath, buf ? why : "out of memory");
        free(buf);
        buf = NULL;
    }
    H5Dclose(dset);
    if (!buf) return NULL;
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

bpe *token_meta_read_bpe(hid_t file, const char *path, char *err, size_t errlen) {
    size_t vl = 0, ml = 0;
    char *v = read_blob(file, "/tokenizer/vocab.json", path, &vl, err, errlen);
    char *m = v ? read_blob(file, "/tokenizer/merges.txt", path, &ml, err, errlen) : NULL;
    bpe *b = NULL;
    if (v && m) {
        size_t len = strlen(path) + 32;
        char *vn = malloc(len), *mn = malloc(len);
        if (vn && mn) {
            snprintf(vn, len, "%s:/tokenizer/vocab.json", path);
            snprintf(mn, len, "%s:/tokenizer/merges.txt", path);
            b = bpe_parse(v, vl, m, ml, vn, mn, err, errlen);
        } else {
            ds_fail(err, errlen, "%s: out of memory", path);
        }
        free(vn);
        free(mn);
    }
    free(v);
    free(m);
    return b;
}

/* ---- token directories ------------------------------------------------------------------ */

int token_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *token_dir_file(const char *dir, int shard) {
    size_t len = strlen(dir) + 32;
    char *p = malloc(len);
    if (!p) return NULL;
    if (shard < 0)
        snprintf(p, len, "%s/%s", dir, TOKEN_INDEX_NAME);
    else
        snprintf(p, len, "%s/shard-%05d.h5", dir, shard);
    return p;
}

void token_index_free(token_index *ix) {
    free(ix->sizes);
    ix->sizes = NULL;
}

#define MAX_SHARDS ((1 << 24) - 1)

static int read_sizes(hid_t file, const char *path, token_index *ix, char *err, size_t errlen) {
    if (!h5_path_exists(file, "/shard_sizes"))
        return ds_fail(err, errlen, "%s: /shard_sizes: not found: expected the token count of each shard", path);
    hid_t dset = H5Dopen2(file, "/shard_sizes", H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID, type = dset >= 0 ? H5Dget_type(dset) : -1;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int ok = type >= 0 && H5Tget_class(type) == H5T_INTEGER && n > 0 && n <= MAX_SHARDS;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    int rc = ok ? 0 : ds_fail(err, errlen, "%s: /shard_sizes: expected 1 to %d integer token counts", path, MAX_SHARDS);
    if (rc == 0) rc = h5_check_storage(dset, path, "/shard_sizes", err, errlen);
    if (rc == 0 && !(ix->sizes = malloc((size_t)n * sizeof *ix->sizes)))
        rc = ds_fail(err, errlen, "%s: out of memory", path);
    if (rc == 0 && H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ix->sizes) < 0) {
        char why[256];
        h5_last_error(why, sizeof why);
        rc = ds_fail(err, errlen, "%s: /shard_sizes: cannot read: %s", path, why);
    }
    if (dset >= 0) H5Dclose(dset);
    if (rc == 0) ix->nshards = (int)n;
    return rc;
}

static int read_split(hid_t file, const char *path, const char *split, token_index *ix, char *err, size_t errlen) {
    char gpath[256], why[256];
    snprintf(gpath, sizeof gpath, "/%s", split);
    if (!h5_path_exists(file, gpath))
        return ds_fail(err, errlen, "%s: %s: not found: expected the split's group (first, count)", path, gpath);
    hid_t g = H5Gopen2(file, gpath, H5P_DEFAULT);
    if (g < 0) return ds_fail(err, errlen, "%s: %s: not a group", path, gpath);
    int rc = 0;
    if (h5_attr_read_i64(g, "first", &ix->first, why, sizeof why) != 0 ||
        h5_attr_read_i64(g, "count", &ix->count, why, sizeof why) != 0)
        rc = ds_fail(err, errlen, "%s: %s: attributes first and count: %s", path, gpath, why);
    H5Gclose(g);
    return rc;
}

static int check_index(const char *path, const char *split, token_index *ix, char *err, size_t errlen) {
    /* the total fits a long (readers index tokens with it), so no sum below overflows */
    int64_t total = 0;
    for (int i = 0; i < ix->nshards; i++) {
        if (ix->sizes[i] < 1 || ix->sizes[i] > LONG_MAX - total)
            return ds_fail(err, errlen, "%s: /shard_sizes[%d] = %lld: expected a positive count, with the total at "
                           "most %ld", path, i, (long long)ix->sizes[i], LONG_MAX);
        total += ix->sizes[i];
    }
    if (ix->first < 0 || ix->count < 1 || ix->first > total || ix->count > total - ix->first)
        return ds_fail(err, errlen, "%s: /%s: %lld tokens from %lld: expected a non-empty range within the %lld "
                       "tokens of the shards", path, split, (long long)ix->count, (long long)ix->first,
                       (long long)total);
    return 0;
}

static int read_index(hid_t file, const char *path, const char *split, token_index *ix, char *err, size_t errlen) {
    char *format = NULL, why[256];
    int64_t v = 0;
    int rc = 0;
    if (h5_attr_read_str(file, "format", &format, why, sizeof why) != 0 || strcmp(format, TOKEN_INDEX_FORMAT) != 0)
        rc = ds_fail(err, errlen, "%s: attribute 'format' on /: expected \"%s\"", path, TOKEN_INDEX_FORMAT);
    free(format);
    if (rc == 0 && (h5_attr_read_i64(file, "vocab_size", &v, why, sizeof why) != 0 || v < 1 || v > BPE_MAX_VOCAB))
        rc = ds_fail(err, errlen, "%s: attribute 'vocab_size' on /: expected 1 to %d", path, BPE_MAX_VOCAB);
    ix->vocab = (int)v;
    if (rc == 0) rc = read_sizes(file, path, ix, err, errlen);
    if (rc == 0) rc = read_split(file, path, split, ix, err, errlen);
    if (rc == 0) rc = check_index(path, split, ix, err, errlen);
    return rc;
}

int token_index_read(const char *dir, const char *split, token_index *ix, char *err, size_t errlen) {
    memset(ix, 0, sizeof *ix);
    char *path = token_dir_file(dir, -1);
    if (!path) return ds_fail(err, errlen, "%s: out of memory", dir);
    int rc = ds_check_readable(path, err, errlen);
    hid_t file = H5I_INVALID_HID;
    if (rc == 0 && (file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        char why[256];
        h5_last_error(why, sizeof why);
        rc = ds_fail(err, errlen, "%s: cannot open as HDF5: %s", path, why);
    }
    if (rc == 0) rc = read_index(file, path, split, ix, err, errlen);
    if (file >= 0) H5Fclose(file);
    if (rc != 0) token_index_free(ix);
    free(path);
    return rc;
}
