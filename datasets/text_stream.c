/* text_stream.c: see text_stream.h. */
#include "text_stream.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ds_util.h"
#include "pretok.h"

struct text_stream {
    char **files;
    int nfiles, cap, cur;
    int checks; /* TEXT_CHECK_* */
    FILE *f;          /* the open file (cur), or NULL */
    uint64_t file_off; /* bytes of it handed out or held */
    unsigned char *buf;
    size_t n, start;  /* buf[start, n): read but not yet handed out */
    uint64_t done, total;
};

/* ---- listing the inputs -------------------------------------------------------------- */

static int add_file(text_stream *s, const char *path, char *err, size_t errlen) {
    if (s->nfiles == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        char **f = realloc(s->files, (size_t)cap * sizeof *f);
        if (!f) return ds_fail(err, errlen, "%s: out of memory", path);
        s->files = f;
        s->cap = cap;
    }
    if (!(s->files[s->nfiles] = strdup(path))) return ds_fail(err, errlen, "%s: out of memory", path);
    s->nfiles++;
    return 0;
}

static int skip_entry(const struct dirent *e) { return e->d_name[0] != '.'; }

/* The directories being listed, innermost first: a symbolic link back to one of them would
 * list it again, endlessly (two such links make the walk exponential, not merely long). */
typedef struct dir_chain {
    dev_t dev;
    ino_t ino;
    const struct dir_chain *up;
} dir_chain;

static int add_path(text_stream *s, const char *path, const dir_chain *up, char *err, size_t errlen);

static int add_dir(text_stream *s, const char *dir, const dir_chain *here, char *err, size_t errlen) {
    struct dirent **list;
    int n = scandir(dir, &list, skip_entry, alphasort), rc = 0;
    if (n < 0) return ds_fail(err, errlen, "%s: cannot list: %s", dir, strerror(errno));
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(list[i]->d_name) + 2;
        char *p = rc ? NULL : malloc(len);
        if (!rc && !p) rc = ds_fail(err, errlen, "%s: out of memory", dir);
        if (p) {
            snprintf(p, len, "%s/%s", dir, list[i]->d_name);
            rc = add_path(s, p, here, err, errlen);
        }
        free(p);
        free(list[i]);
    }
    free(list);
    return rc;
}

/* up: the directories above path (NULL for a path given by the user). Inside a directory
 * only regular files are taken: a FIFO or a device there (/dev/zero, /dev/urandom through
 * a link) would never end; named on the command line (-, /dev/stdin, a pipe) they are
 * meant. */
static int add_path(text_stream *s, const char *path, const dir_chain *up, char *err, size_t errlen) {
    if (strcmp(path, "-") == 0 && !up) return add_file(s, path, err, errlen);
    struct stat st;
    if (stat(path, &st) != 0) return ds_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        for (const dir_chain *d = up; d; d = d->up)
            if (d->dev == st.st_dev && d->ino == st.st_ino)
                return ds_fail(err, errlen, "%s: a link back to a directory that contains it: expected a tree of "
                               "text files", path);
        dir_chain here = {st.st_dev, st.st_ino, up};
        int before = s->nfiles, rc = add_dir(s, path, &here, err, errlen);
        if (rc == 0 && s->nfiles == before) rc = ds_fail(err, errlen, "%s: holds no files: expected text files", path);
        return rc;
    }
    if (up ? !S_ISREG(st.st_mode) : !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) return 0;
    s->total += S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    return add_file(s, path, err, errlen);
}

text_stream *text_stream_open(const char *const *paths, int npaths, int checks, char *err, size_t errlen) {
    text_stream *s = calloc(1, sizeof *s);
    if (s) s->buf = malloc(TEXT_CHUNK_BYTES);
    if (!s || !s->buf) {
        free(s);
        ds_fail(err, errlen, "%s: out of memory", npaths > 0 ? paths[0] : "input");
        return NULL;
    }
    s->checks = checks;
    int rc = npaths > 0 ? 0 : ds_fail(err, errlen, "no input: expected --in FILE|DIR|-");
    for (int i = 0; rc == 0 && i < npaths; i++) rc = add_path(s, paths[i], NULL, err, errlen);
    if (rc != 0) {
        text_stream_close(s);
        return NULL;
    }
    return s;
}

void text_stream_close(text_stream *s) {
    if (!s) return;
    if (s->f && s->f != stdin) fclose(s->f);
    for (int i = 0; i < s->nfiles; i++) free(s->files[i]);
    free(s->files);
    free(s->buf);
    free(s);
}

int text_stream_file_count(const text_stream *s) { return s->nfiles; }
uint64_t text_stream_done(const text_stream *s) { return s->done; }
uint64_t text_stream_total(const text_stream *s) { return s->total; }

/* ---- reading ------------------------------------------------------------------------- */

static const char *cur_name(const text_stream *s) {
    return strcmp(s->files[s->cur], "-") == 0 ? "standard input" : s->files[s->cur];
}

static int open_next(text_stream *s, char *err, size_t errlen) {
    const char *p = s->files[s->cur];
    s->f = strcmp(p, "-") == 0 ? stdin : fopen(p, "rb");
    s->file_off = 0;
    if (!s->f) return ds_fail(err, errlen, "%s: cannot open: %s", p, strerror(errno));
    return 0;
}

static int check_bytes(const text_stream *s, const unsigned char *b, size_t n, char *err, size_t errlen) {
    const unsigned char *nul = (s->checks & TEXT_CHECK_NUL) ? memchr(b, 0, n) : NULL;
    if (nul)
        return ds_fail(err, errlen, "%s: NUL byte at offset %llu: expected text (is it a binary file?)",
                       cur_name(s), (unsigned long long)(s->file_off + (uint64_t)(nul - b)));
    return 0;
}

/* Fills buf after the held tail; 1 if the file ended. */
static int fill(text_stream *s, int *eof, char *err, size_t errlen) {
    memmove(s->buf, s->buf + s->start, s->n - s->start);
    s->n -= s->start;
    s->start = 0;
    size_t before = s->n;
    while (s->n < TEXT_CHUNK_BYTES) {
        size_t got = fread(s->buf + s->n, 1, TEXT_CHUNK_BYTES - s->n, s->f);
        s->n += got;
        if (got == 0) break;
    }
    if (ferror(s->f)) return ds_fail(err, errlen, "%s: cannot read: %s", cur_name(s), strerror(errno));
    *eof = s->n < TEXT_CHUNK_BYTES;
    int rc = check_bytes(s, s->buf + before, s->n - before, err, errlen);
    s->file_off += s->n - before;
    return rc;
}

/* Where to cut a full buffer: a pre-tokenizer boundary, else a character boundary. */
static size_t cut_point(const unsigned char *b, size_t n) {
    size_t c = pretok_safe_cut(b, n);
    if (c > 0) return c;
    c = n;
    while (c > n - 4 && c > 1 && (b[c - 1] & 0xC0) == 0x80) c--; /* back to a lead byte ... */
    if (c > 1 && b[c - 1] >= 0xC0) return c - 1;                 /* ... and before it */
    return n;
}

static int finish_file(text_stream *s, char *err, size_t errlen) {
    int rc = 0;
    if ((s->checks & TEXT_CHECK_EMPTY) && s->file_off == 0)
        rc = ds_fail(err, errlen, "%s: is empty: expected text", cur_name(s));
    if (s->f != stdin) fclose(s->f);
    s->f = NULL;
    s->cur++;
    return rc;
}

int text_stream_next(text_stream *s, const char **chunk, size_t *len, char *err, size_t errlen) {
    for (;;) {
        if (!s->f) {
            if (s->cur >= s->nfiles) return 0;
            if (open_next(s, err, errlen) != 0) return -1;
        }
        int eof = 0;
        if (fill(s, &eof, err, errlen) != 0) return -1;
        size_t cut = eof ? s->n : cut_point(s->buf, s->n);
        if (eof && finish_file(s, err, errlen) != 0) return -1;
        if (cut == 0) continue; /* an empty file, allowed */
        *chunk = (const char *)s->buf;
        *len = cut;
        s->start = cut;
        if (eof) s->n = s->start; /* nothing is carried over into the next file */
        s->done += cut;
        return 1;
    }
}
