/* mnist_idx.c: readers for idx files, gzipped or plain.
 *
 * An idx file is a 4-byte big-endian magic (0, 0, type 0x08 = unsigned byte, number of
 * dimensions), one big-endian uint32 per dimension, then the payload in row-major order,
 * and nothing after it. */
#include "mnist_idx.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ds_util.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_DIMS 3
#define READ_STEP (1u << 24) /* gzread takes an unsigned count; read in bounded steps */

typedef struct {
    const char *path;
    gzFile gz;
    char *err;
    size_t errlen;
} idx_file;

/* What one idx kind looks like, for checks and messages. */
typedef struct {
    uint32_t magic;
    int ndims;
    const char *kind;    /* "images", "labels" */
    const char *payload; /* "pixels", "labels" */
} idx_kind;

static const idx_kind IMAGES = {IDX_IMAGES_MAGIC, 3, "idx3 unsigned-byte images", "pixels"};
static const idx_kind LABELS = {IDX_LABELS_MAGIC, 1, "idx1 unsigned-byte labels", "labels"};

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads up to n bytes; *got says how many arrived. -1 only on a read error (gzip data
 * corrupt, I/O error); a short read at end of file is the caller's to judge. */
static int read_some(idx_file *f, uint8_t *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        size_t step = n - *got < READ_STEP ? n - *got : READ_STEP;
        int r = gzread(f->gz, buf + *got, (unsigned)step);
        if (r < 0) {
            int code;
            const char *msg = gzerror(f->gz, &code);
            return ds_fail(f->err, f->errlen, "%s: read error: %s", f->path,
                           code == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

/* zlib reports a gzip stream cut short as a short read plus this note */
static const char *gzip_note(idx_file *f) {
    int code;
    gzerror(f->gz, &code);
    return code == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

static int read_header(idx_file *f, const idx_kind *k, uint32_t *dims) {
    uint8_t h[4 + 4 * IDX_MAX_DIMS];
    size_t want = 4 + 4 * (size_t)k->ndims, got;
    if (read_some(f, h, want, &got) != 0) return -1;
    if (got >= 4 && be32(h) != k->magic) {
        const char *hint = be32(h) == IMAGES.magic   ? " (this is an image file)"
                           : be32(h) == LABELS.magic ? " (this is a label file)"
                                                     : "";
        return ds_fail(f->err, f->errlen, "%s: bad magic number 0x%08x: expected 0x%08x (%s)%s",
                       f->path, be32(h), k->magic, k->kind, hint);
    }
    if (got < want)
        return ds_fail(f->err, f->errlen,
                       "%s: truncated header: expected %zu bytes (magic and %d dimensions), got %zu%s",
                       f->path, want, k->ndims, got, gzip_note(f));
    for (int d = 0; d < k->ndims; d++) dims[d] = be32(h + 4 + 4 * d);
    return 0;
}

/* The buffer grows as data arrives instead of trusting the header: a corrupt count must
 * not make us allocate gigabytes before we find out that the file is short. */
static int read_payload(idx_file *f, const idx_kind *k, size_t want, uint8_t **out) {
    size_t cap = want < READ_STEP ? want : READ_STEP, len = 0, got;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return ds_fail(f->err, f->errlen, "%s: out of memory (%zu bytes)", f->path, cap);
    for (;;) {
        if (read_some(f, buf + len, cap - len, &got) != 0) goto fail;
        len += got;
        if (len < cap || cap == want) break;
        size_t next = cap > want / 2 ? want : 2 * cap;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            ds_fail(f->err, f->errlen, "%s: out of memory (%zu bytes)", f->path, next);
            goto fail;
        }
        buf = grown;
        cap = next;
    }
    if (len < want) {
        ds_fail(f->err, f->errlen, "%s: truncated: expected %zu bytes of %s after the header, got %zu%s",
                f->path, want, k->payload, len, gzip_note(f));
        goto fail;
    }
    *out = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

static int expect_end(idx_file *f, const idx_kind *k, size_t payload) {
    uint8_t extra;
    size_t got;
    if (read_some(f, &extra, 1, &got) != 0) return -1;
    if (got != 0)
        return ds_fail(f->err, f->errlen,
                       "%s: trailing data: expected the file to end after %zu bytes of %s, but it goes on",
                       f->path, payload, k->payload);
    return 0;
}

/* The count is an int in our API, and the product of the dims must fit in memory sizes. */
static int payload_size(idx_file *f, const idx_kind *k, const uint32_t *dims, size_t *size) {
    *size = 1;
    for (int d = 0; d < k->ndims; d++) {
        if (dims[d] > INT_MAX)
            return ds_fail(f->err, f->errlen, "%s: dimension %d is %u: expected at most %d", f->path, d,
                           dims[d], INT_MAX);
        if (dims[d] != 0 && *size > SIZE_MAX / dims[d])
            return ds_fail(f->err, f->errlen, "%s: dimensions too large for memory", f->path);
        *size *= dims[d];
    }
    return 0;
}

static int read_idx(const char *path, const idx_kind *k, uint8_t **data, uint32_t *dims, char *err,
                    size_t errlen) {
    idx_file f = {path, NULL, err, errlen};
    errno = 0;
    /* gzopen reads plain files transparently, so gzip is detected by content */
    f.gz = gzopen(path, "rb");
    if (!f.gz)
        return ds_fail(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(f.gz, 1u << 17);
    size_t size = 0;
    uint8_t *buf = NULL;
    int rc = read_header(&f, k, dims);
    if (rc == 0) rc = payload_size(&f, k, dims, &size);
    if (rc == 0) rc = read_payload(&f, k, size, &buf);
    if (rc == 0) rc = expect_end(&f, k, size);
    gzclose(f.gz);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *data = buf;
    return 0;
}

int idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols, char *err,
                    size_t errlen) {
    uint32_t dims[3];
    if (read_idx(path, &IMAGES, pixels, dims, err, errlen) != 0) return -1;
    *n = (int)dims[0];
    *rows = (int)dims[1];
    *cols = (int)dims[2];
    return 0;
}

int idx_read_labels(const char *path, uint8_t **labels, int *n, char *err, size_t errlen) {
    uint32_t dims[1];
    if (read_idx(path, &LABELS, labels, dims, err, errlen) != 0) return -1;
    *n = (int)dims[0];
    return 0;
}
