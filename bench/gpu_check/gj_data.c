/* gj_data.c: gpu_jobs' data, from the repository's data/ directory: MNIST's training set
 * through datasets/mnist_idx.c (zlib, no HDF5) and tinyshakespeare at character level.
 *
 * Built with GJ_NO_ZLIB (bench/gpu_check on a machine without zlib's header), it reads the
 * idx files unpacked instead (DATA/mnist/train-*-ubyte, which gpu_check.sh then writes
 * with Python's gzip) with the small reader below, which checks the same header fields. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_jobs.h"
#include "util.h"

#ifdef GJ_NO_ZLIB
#define GZ ""

/* An unpacked idx file: magic 0x0000080<ndim>, ndim big-endian sizes, the uint8 payload. */
static int read_plain_idx(const char *path, int ndim, uint8_t **data, int *dims, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: cannot open (unpacked by gpu_check.sh?)", path), -1;
    uint8_t h[16];
    size_t hn = 4 + 4 * (size_t)ndim, n = 1;
    int ok = fread(h, 1, hn, f) == hn && h[0] == 0 && h[1] == 0 && h[2] == 8 && h[3] == ndim;
    for (int i = 0; ok && i < ndim; i++) {
        const uint8_t *b = h + 4 + 4 * i;
        dims[i] = (int)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        ok = dims[i] > 0 && dims[i] < (1 << 28);
        n *= (size_t)dims[i];
    }
    *data = ok ? xmalloc(n) : NULL;
    ok = ok && fread(*data, 1, n, f) == n && fgetc(f) == EOF;
    fclose(f);
    if (ok) return 0;
    free(*data);
    *data = NULL;
    return snprintf(err, errlen, "%s: not an unpacked idx%d file of uint8", path, ndim == 3 ? 3 : 1), -1;
}

static int load_pair(gj_mnist *d, const char *ipath, const char *lpath, int *nl, char *err, size_t errlen) {
    int di[3], dl[1];
    if (read_plain_idx(ipath, 3, &d->images, di, err, errlen)) return -1;
    d->n = di[0], d->H = di[1], d->W = di[2];
    if (d->H != 28 || d->W != 28)
        return snprintf(err, errlen, "%s: images are %dx%d: expected 28x28", ipath, d->H, d->W), -1;
    if (read_plain_idx(lpath, 1, &d->labels, dl, err, errlen)) return -1;
    *nl = dl[0];
    return 0;
}
#else
#include "mnist_idx.h"
#define GZ ".gz"

static int load_pair(gj_mnist *d, const char *ipath, const char *lpath, int *nl, char *err, size_t errlen) {
    if (idx_read_images_sized(ipath, 28, 28, &d->images, &d->n, &d->H, &d->W, err, errlen)) return -1;
    return idx_read_labels(lpath, &d->labels, nl, err, errlen);
}
#endif

int gj_mnist_load(gj_mnist *d, const char *data_dir, char *err, size_t errlen) {
    char ipath[4096], lpath[4096];
    snprintf(ipath, sizeof ipath, "%s/mnist/train-images-idx3-ubyte" GZ, data_dir);
    snprintf(lpath, sizeof lpath, "%s/mnist/train-labels-idx1-ubyte" GZ, data_dir);
    memset(d, 0, sizeof *d);
    int nl = 0;
    if (load_pair(d, ipath, lpath, &nl, err, errlen)) {
        gj_mnist_free(d);
        return -1;
    }
    if (nl != d->n) {
        snprintf(err, errlen, "%s: %d labels for the %d images of %s", lpath, nl, d->n, ipath);
        gj_mnist_free(d);
        return -1;
    }
    for (int i = 0; i < nl; i++)
        if (d->labels[i] > 9) {
            snprintf(err, errlen, "%s: label %d of example %d: expected 0..9", lpath, d->labels[i], i);
            gj_mnist_free(d);
            return -1;
        }
    return 0;
}

void gj_mnist_free(gj_mnist *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

int gj_text_load(gj_text *t, const char *data_dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tinyshakespeare.txt", data_dir);
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    size_t cap = 1 << 20, n = 0, got;
    uint8_t *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || n < 1024) {
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "shorter than 1024 bytes");
        free(buf);
        return -1;
    }
    /* the vocabulary: the distinct bytes in increasing order, as prepare_text's char mode */
    int id[256], seen[256] = {0};
    for (size_t i = 0; i < n; i++) seen[buf[i]] = 1;
    for (int b = 0; b < 256; b++) id[b] = seen[b] ? t->vocab++ : -1;
    t->ids = xmalloc(n * sizeof *t->ids);
    for (size_t i = 0; i < n; i++) t->ids[i] = id[buf[i]];
    t->n = n;
    free(buf);
    return 0;
}

void gj_text_free(gj_text *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}
