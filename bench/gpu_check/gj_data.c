/* gj_data.c: gpu_jobs' data, from the repository's data/ directory: MNIST's training set
 * through datasets/mnist_idx.c (zlib, no HDF5) and tinyshakespeare at character level. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_jobs.h"
#include "mnist_idx.h"
#include "util.h"

int gj_mnist_load(gj_mnist *d, const char *data_dir, char *err, size_t errlen) {
    char ipath[4096], lpath[4096];
    snprintf(ipath, sizeof ipath, "%s/mnist/train-images-idx3-ubyte.gz", data_dir);
    snprintf(lpath, sizeof lpath, "%s/mnist/train-labels-idx1-ubyte.gz", data_dir);
    memset(d, 0, sizeof *d);
    int nl = 0;
    if (idx_read_images_sized(ipath, 28, 28, &d->images, &d->n, &d->H, &d->W, err, errlen)) return -1;
    if (idx_read_labels(lpath, &d->labels, &nl, err, errlen)) {
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
