/* mnist_idx.c: readers for idx files, gzipped or plain.
 *
 * An idx file is a 4-byte big-endian magic (0, 0, type 0x08 = unsigned byte, number of
 * dimensions), one big-endian uint32 per dimension, then the payload in row-major order,
 * and nothing after it. */
#include "mnist_idx.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ds_util.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_DIMS 3
#define READ_STEP (1u << 24) /* inflate takes an unsigned count; read in bounded steps */
#define IN_BYTES (1u << 17)  /* file bytes buffered per fread */
#define GZIP_WINDOW (15 + 16) /* zlib's code for "a gzip wrapper, 32 KB window" */

/* An open idx file, plain or gzipped. We inflate with zlib ourselves rather than through
 * gzread, because gzread cannot say what we must know: it treats a stream cut before its
 * CRC trailer as a clean end (the error is only noted, as Z_BUF_ERROR), and it silently
 * skips whatever follows the last gzip member. */
typedef struct {
    const char *path;
    FILE *fp;
    z_stream z;       /* next_in/avail_in: the unread file bytes in `in`, plain or not */
    uint8_t *in;      /* IN_BYTES */
    int gz;           /* starts with the gzip magic 1f 8b */
    int inflating;    /* inflateInit2 succeeded: inflateEnd is owed */
    int member_ended; /* the current gzip member is complete, trailer checked */
    int cut;          /* the file ended inside a gzip member */
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

/* ---- the byte source: file → buffer → (inflate) → caller ---------------------------- */

/* Moves the unread bytes to the front of the buffer and reads until at least `want` are
 * there or the file ends. Returns how many are buffered, or -1 on a read error. */
static long top_up(idx_file *f, size_t want) {
    if (f->z.avail_in >= want) return (long)f->z.avail_in;
    memmove(f->in, f->z.next_in, f->z.avail_in);
    f->z.next_in = f->in;
    while (f->z.avail_in < want) {
        size_t got = fread(f->in + f->z.avail_in, 1, IN_BYTES - f->z.avail_in, f->fp);
        f->z.avail_in += (uInt)got;
        if (got == 0) break;
    }
    if (ferror(f->fp)) return ds_fail(f->err, f->errlen, "%s: read error: %s", f->path, strerror(errno));
    return (long)f->z.avail_in;
}

static int read_plain(idx_file *f, uint8_t *buf, size_t n, size_t *got) {
    while (*got < n) {
        long have = top_up(f, 1);
        if (have < 0) return -1;
        if (have == 0) break;
        size_t k = n - *got < (size_t)have ? n - *got : (size_t)have;
        memcpy(buf + *got, f->z.next_in, k);
        f->z.next_in += k;
        f->z.avail_in -= (uInt)k;
        *got += k;
    }
    return 0;
}

/* zlib's messages for a damaged stream, in the words of the checks that caught it */
static int gzip_fail(idx_file *f, int code) {
    const char *msg = f->z.msg ? f->z.msg : "";
    if (code == Z_MEM_ERROR) return ds_fail(f->err, f->errlen, "%s: out of memory decompressing", f->path);
    if (strcmp(msg, "incorrect data check") == 0)
        return ds_fail(f->err, f->errlen, "%s: gzip CRC mismatch (the file is corrupted)", f->path);
    if (strcmp(msg, "incorrect length check") == 0)
        return ds_fail(f->err, f->errlen, "%s: gzip length mismatch (the file is corrupted)", f->path);
    return ds_fail(f->err, f->errlen, "%s: corrupt gzip stream: %s", f->path, msg[0] ? msg : "unknown zlib error");
}

/* After a member's trailer comes another member (gzip allows concatenation: `cat a.gz
 * b.gz` is a valid .gz of both) or the end of the file. Anything else is rejected, as data
 * after the payload of a plain file is: gzip(1) warns "trailing garbage ignored" and zlib's
 * gzread skips it silently, but a file with a tail we cannot account for is not the file
 * that was published (a broken download or concatenation), and we will not guess. */
static int next_member(idx_file *f) {
    long have = top_up(f, 2);
    if (have < 0) return -1;
    if (have < 2 || f->z.next_in[0] != 0x1f || f->z.next_in[1] != 0x8b)
        return ds_fail(f->err, f->errlen, "%s: trailing data after the end of the gzip stream: expected the "
                       "file to end there", f->path);
    f->member_ended = 0;
    int rc = inflateReset(&f->z);
    return rc == Z_OK ? 0 : gzip_fail(f, rc);
}

static int read_gzip(idx_file *f, uint8_t *buf, size_t n, size_t *got) {
    while (*got < n) {
        long have = top_up(f, 1);
        if (have < 0) return -1;
        if (have == 0) {
            f->cut = !f->member_ended;
            break;
        }
        if (f->member_ended && next_member(f) != 0) return -1;
        size_t step = n - *got < READ_STEP ? n - *got : READ_STEP;
        f->z.next_out = buf + *got;
        f->z.avail_out = (uInt)step;
        int rc = inflate(&f->z, Z_NO_FLUSH);
        *got += step - f->z.avail_out;
        if (rc == Z_STREAM_END)
            f->member_ended = 1; /* inflate has checked the member's CRC and length */
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return gzip_fail(f, rc);
    }
    return 0;
}

/* Reads up to n bytes; *got says how many arrived. -1 only on an error (I/O, corrupt
 * gzip data, bytes after the gzip stream); a short read at the end of the file is the
 * caller's to judge, with f->cut saying whether a gzip stream was cut short. */
static int read_some(idx_file *f, uint8_t *buf, size_t n, size_t *got) {
    *got = 0;
    return f->gz ? read_gzip(f, buf, n, got) : read_plain(f, buf, n, got);
}

static const char *gzip_note(const idx_file *f) {
    return f->cut ? " (the gzip stream ends early)" : "";
}

/* Gzip is detected by content, not by name: a .gz that was gunzipped but kept its name,
 * or a gzipped file without one, both read. An idx file starts with 00 00, never 1f 8b. */
static int open_idx(idx_file *f) {
    errno = 0;
    f->fp = fopen(f->path, "rb");
    if (!f->fp) return ds_fail(f->err, f->errlen, "%s: cannot open: %s", f->path, strerror(errno));
    f->in = malloc(IN_BYTES);
    if (!f->in) return ds_fail(f->err, f->errlen, "%s: out of memory", f->path);
    f->z.next_in = f->in;
    long have = top_up(f, 2);
    if (have < 0) return -1;
    f->gz = have >= 2 && f->in[0] == 0x1f && f->in[1] == 0x8b;
    if (!f->gz) return 0;
    int rc = inflateInit2(&f->z, GZIP_WINDOW);
    if (rc != Z_OK) return gzip_fail(f, rc);
    f->inflating = 1;
    return 0;
}

static void close_idx(idx_file *f) {
    if (f->inflating) inflateEnd(&f->z);
    if (f->fp) fclose(f->fp);
    free(f->in);
}

/* ---- the idx layout ------------------------------------------------------------------ */

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

/* Checked before the payload is read: a header that announces 32x32 images over a file of
 * 28x28 ones is wrong about the image size, and calling the file "truncated" would send
 * the user looking for a broken download. rows or cols 0: any size. */
static int check_image_size(idx_file *f, const uint32_t *dims, int rows, int cols) {
    if ((rows == 0 || dims[1] == (uint32_t)rows) && (cols == 0 || dims[2] == (uint32_t)cols)) return 0;
    return ds_fail(f->err, f->errlen, "%s: images are %ux%u: expected %dx%d", f->path, dims[1], dims[2], rows,
                   cols);
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

/* Reading one byte past the payload also makes inflate consume the gzip trailer, so a
 * CRC or length mismatch, a stream cut before its trailer, and bytes after the stream are
 * all found here rather than ignored. */
static int expect_end(idx_file *f, const idx_kind *k, size_t payload) {
    uint8_t extra;
    size_t got;
    if (read_some(f, &extra, 1, &got) != 0) return -1;
    if (got != 0)
        return ds_fail(f->err, f->errlen,
                       "%s: trailing data: expected the file to end after %zu bytes of %s, but it goes on",
                       f->path, payload, k->payload);
    if (f->cut) return ds_fail(f->err, f->errlen, "%s: truncated gzip stream (missing CRC trailer)", f->path);
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

/* rows, cols: the image size to insist on (0: any); labels pass 0, 0 */
static int read_idx(const char *path, const idx_kind *k, int rows, int cols, uint8_t **data, uint32_t *dims,
                    char *err, size_t errlen) {
    idx_file f = {.path = path, .err = err, .errlen = errlen};
    size_t size = 0;
    uint8_t *buf = NULL;
    int rc = open_idx(&f);
    if (rc == 0) rc = read_header(&f, k, dims);
    if (rc == 0 && k == &IMAGES) rc = check_image_size(&f, dims, rows, cols);
    if (rc == 0) rc = payload_size(&f, k, dims, &size);
    if (rc == 0) rc = read_payload(&f, k, size, &buf);
    if (rc == 0) rc = expect_end(&f, k, size);
    close_idx(&f);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *data = buf;
    return 0;
}

int idx_read_images_sized(const char *path, int want_rows, int want_cols, uint8_t **pixels, int *n, int *rows,
                          int *cols, char *err, size_t errlen) {
    uint32_t dims[3];
    if (read_idx(path, &IMAGES, want_rows, want_cols, pixels, dims, err, errlen) != 0) return -1;
    *n = (int)dims[0];
    *rows = (int)dims[1];
    *cols = (int)dims[2];
    return 0;
}

int idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols, char *err,
                    size_t errlen) {
    return idx_read_images_sized(path, 0, 0, pixels, n, rows, cols, err, errlen);
}

int idx_read_labels(const char *path, uint8_t **labels, int *n, char *err, size_t errlen) {
    uint32_t dims[1];
    if (read_idx(path, &LABELS, 0, 0, labels, dims, err, errlen) != 0) return -1;
    *n = (int)dims[0];
    return 0;
}
