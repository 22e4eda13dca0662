/* prepare_mnist.c: `dtrain prepare mnist`, four idx files → one HDF5 image file.
 *
 * Layout (format "dtrain-images-v1"): /train and /test groups, each with images
 * (N x 28 x 28 x 1 uint8) and labels (N uint8) and a "count" attribute; the root says
 * where the data came from. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "ds_util.h"
#include "mnist_idx.h"

#define MNIST_SIDE 28
#define MNIST_CLASSES 10
/* 256 images = 200 KB per chunk: large enough for fast sequential reads, small enough
 * that a rank's hyperslab drags in little of its neighbours' data at the edges. */
#define CHUNK_IMAGES 256

typedef struct {
    uint8_t *images; /* n x 28 x 28 */
    uint8_t *labels; /* n */
    int n;
} mnist_split;

typedef struct {
    const char *out; /* the final name, for messages */
    char *err;
    size_t errlen;
} writer;

/* DIR/NAME.gz or DIR/NAME. When both exist we refuse rather than pick one: they usually
 * come from `gunzip -k` and hold the same data, but when they differ (a re-download next
 * to an old copy, a hand-edited file) either silent choice converts data the user did not
 * mean, and nothing downstream could tell. One `rm` settles it for good. */
static int find_idx(const char *dir, const char *name, char *path, size_t len, char *err, size_t errlen) {
    struct stat st;
    char gz[4096];
    snprintf(gz, sizeof gz, "%s/%s.gz", dir, name);
    snprintf(path, len, "%s/%s", dir, name);
    int have_gz = stat(gz, &st) == 0, have_plain = stat(path, &st) == 0;
    if (have_gz && have_plain)
        return ds_fail(err, errlen, "%s and %s both exist: expected one of them (remove the one not to convert)",
                       gz, path);
    if (have_gz) snprintf(path, len, "%s", gz);
    if (have_gz || have_plain) return 0;
    return ds_fail(err, errlen, "%s/%s[.gz]: not found: expected the gzipped or plain idx file", dir, name);
}

/* The image size was checked by the reader, before it read the pixels. */
static int check_split(const mnist_split *s, const char *img_path, const char *lab_path, int nlabels, char *err,
                       size_t errlen) {
    if (s->n == 0) return ds_fail(err, errlen, "%s: holds 0 images: expected at least 1", img_path);
    if (nlabels != s->n)
        return ds_fail(err, errlen, "%s: holds %d labels: expected %d, one per image in %s", lab_path, nlabels,
                       s->n, img_path);
    for (int i = 0; i < s->n; i++)
        if (s->labels[i] >= MNIST_CLASSES)
            return ds_fail(err, errlen, "%s: label %d at index %d: expected 0..%d", lab_path, s->labels[i], i,
                           MNIST_CLASSES - 1);
    return 0;
}

static void free_split(mnist_split *s) {
    free(s->images);
    free(s->labels);
    s->images = s->labels = NULL;
}

/* prefix "train" or "t10k" */
static int load_split(const char *dir, const char *prefix, mnist_split *s, char *err, size_t errlen) {
    char img[4096], lab[4096], name[64];
    int rows = 0, cols = 0, nlabels = 0;
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    if (find_idx(dir, name, img, sizeof img, err, errlen) != 0) return -1;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    if (find_idx(dir, name, lab, sizeof lab, err, errlen) != 0) return -1;
    if (idx_read_images_sized(img, MNIST_SIDE, MNIST_SIDE, &s->images, &s->n, &rows, &cols, err, errlen) != 0)
        return -1;
    if (idx_read_labels(lab, &s->labels, &nlabels, err, errlen) != 0 ||
        check_split(s, img, lab, nlabels, err, errlen) != 0) {
        free_split(s);
        return -1;
    }
    return 0;
}

/* ---- HDF5 writing: every function closes what it opened, on every path ------------- */

static int h5_fail(const writer *w, const char *what) {
    char why[512];
    h5_last_error(why, sizeof why);
    return ds_fail(w->err, w->errlen, "%s: cannot write %s: %s", w->out, what, why);
}

/* variable-length UTF-8, which h5py reads back as str rather than bytes */
static int set_str_attr(const writer *w, hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = type >= 0 && space >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(type, H5T_CSET_UTF8) >= 0 &&
             (attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, type, &value) >= 0;
    int rc = ok ? 0 : h5_fail(w, name);
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

static int set_i64_attr(const writer *w, hid_t obj, const char *name, int64_t value) {
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = space >= 0 &&
             (attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0;
    int rc = ok ? 0 : h5_fail(w, name);
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* Creates GROUP/NAME as a chunked uint8 array of the given shape and writes data to it.
 * Each chunk carries a Fletcher32 checksum, which HDF5 verifies on every read: a flipped
 * bit in the pixels becomes an error instead of a silently different training set. On
 * success *out is the open dataset (for attributes); the caller closes it. */
static int write_u8(const writer *w, hid_t group, const char *what, const char *name, int rank,
                    const hsize_t *dims, const void *data, hid_t *out) {
    hsize_t chunk[4];
    for (int d = 0; d < rank; d++) chunk[d] = dims[d];
    chunk[0] = dims[0] < CHUNK_IMAGES ? dims[0] : CHUNK_IMAGES;
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dset = H5I_INVALID_HID;
    int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0 &&
             (dset = H5Dcreate2(group, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    int rc = ok ? 0 : h5_fail(w, what);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (rc == 0)
        *out = dset;
    else if (dset >= 0)
        H5Dclose(dset);
    return rc;
}

static int write_images(const writer *w, hid_t group, const char *gname, const mnist_split *s) {
    char what[64];
    snprintf(what, sizeof what, "/%s/images", gname);
    hsize_t dims[4] = {(hsize_t)s->n, MNIST_SIDE, MNIST_SIDE, 1};
    hid_t dset;
    if (write_u8(w, group, what, "images", 4, dims, s->images, &dset) != 0) return -1;
    int rc = set_i64_attr(w, dset, "height", MNIST_SIDE);
    if (rc == 0) rc = set_i64_attr(w, dset, "width", MNIST_SIDE);
    if (rc == 0) rc = set_i64_attr(w, dset, "channels", 1);
    H5Dclose(dset);
    return rc;
}

static int write_labels(const writer *w, hid_t group, const char *gname, const mnist_split *s) {
    char what[64];
    snprintf(what, sizeof what, "/%s/labels", gname);
    hsize_t dims[1] = {(hsize_t)s->n};
    hid_t dset;
    if (write_u8(w, group, what, "labels", 1, dims, s->labels, &dset) != 0) return -1;
    int rc = set_i64_attr(w, dset, "classes", MNIST_CLASSES);
    H5Dclose(dset);
    return rc;
}

static int write_split(const writer *w, hid_t file, const char *gname, const mnist_split *s) {
    char what[64];
    snprintf(what, sizeof what, "/%s", gname);
    hid_t group = H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return h5_fail(w, what);
    int rc = set_i64_attr(w, group, "count", s->n);
    if (rc == 0) rc = write_images(w, group, gname, s);
    if (rc == 0) rc = write_labels(w, group, gname, s);
    H5Gclose(group);
    return rc;
}

static int write_h5(const writer *w, const char *tmp, const char *idx_dir, const mnist_split *train,
                    const mnist_split *test) {
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return h5_fail(w, "the file");
    int rc = set_str_attr(w, file, "format", "dtrain-images-v1");
    if (rc == 0) rc = set_str_attr(w, file, "source", idx_dir);
    if (rc == 0) rc = write_split(w, file, "train", train);
    if (rc == 0) rc = write_split(w, file, "test", test);
    if (rc == 0 && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) rc = h5_fail(w, "the file (flush)");
    if (H5Fclose(file) < 0 && rc == 0) rc = h5_fail(w, "the file (close)");
    return rc;
}

static int write_and_rename(const writer *w, const char *idx_dir, const mnist_split *train,
                            const mnist_split *test) {
    size_t len = strlen(w->out) + 32;
    char *tmp = malloc(len);
    if (!tmp) return ds_fail(w->err, w->errlen, "%s: out of memory", w->out);
    /* same directory as the output, so the rename cannot cross file systems */
    snprintf(tmp, len, "%s.tmp.%ld", w->out, (long)getpid());
    int rc = ds_tmp_guard_begin(tmp, w->err, w->errlen);
    if (rc != 0) {
        free(tmp);
        return rc;
    }
    h5_quiet q;
    h5_quiet_begin(&q);
    rc = write_h5(w, tmp, idx_dir, train, test);
    h5_quiet_end(&q);
    if (rc == 0)
        rc = ds_sync_and_rename(tmp, w->out, w->err, w->errlen);
    else
        remove(tmp);
    ds_tmp_guard_end();
    free(tmp);
    return rc;
}

/* Everything that goes wrong while reading the idx files is the input's fault (missing,
 * unreadable, malformed: exit 2); what goes wrong after is the output's (exit 1). */
int prepare_mnist(const char *idx_dir, const char *out_path, char *err, size_t errlen) {
    mnist_split train = {0}, test = {0};
    if (load_split(idx_dir, "train", &train, err, errlen) != 0) return PREPARE_BAD_INPUT;
    if (load_split(idx_dir, "t10k", &test, err, errlen) != 0) {
        free_split(&train);
        return PREPARE_BAD_INPUT;
    }
    writer w = {out_path, err, errlen};
    int rc = write_and_rename(&w, idx_dir, &train, &test) == 0 ? PREPARE_OK : PREPARE_FAILED;
    free_split(&train);
    free_split(&test);
    return rc;
}
