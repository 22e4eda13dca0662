/* tokenizer.c: the char and byte tokenizers, rebuilt from a token file's attributes alone,
 * so that sampling and evaluation need only the .h5 file, not the source text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "ds_util.h"
#include "tokens.h"
#include "utf8.h"

#define TOKENS_FORMAT "dtrain-tokens-v1"

struct tokenizer {
    int is_char;   /* else "byte" */
    int vocab;
    uint32_t *cps; /* "char": the code point of each id; ascending, because ids follow code-point order */
    char *path;    /* for messages */
};

/* ---- loading ----------------------------------------------------------------------- */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} loader;

static int attr_fail(const loader *l, const char *name, const char *what, const char *expect) {
    return ds_fail(l->err, l->errlen, "%s: attribute '%s' on /: %s: expected %s", l->path, name, what, expect);
}

static int read_str(const loader *l, hid_t file, const char *name, const char *expect, char **out) {
    char why[256];
    if (h5_attr_read_str(file, name, out, why, sizeof why) != 0) return attr_fail(l, name, why, expect);
    return 0;
}

static int read_kind(const loader *l, hid_t file, tokenizer *t) {
    char *format = NULL, *kind = NULL;
    int rc = read_str(l, file, "format", "\"" TOKENS_FORMAT "\" (a file from dtrain prepare text)", &format);
    if (rc == 0 && strcmp(format, TOKENS_FORMAT) != 0)
        rc = ds_fail(l->err, l->errlen, "%s: format \"%s\": expected \"%s\"", l->path, format, TOKENS_FORMAT);
    if (rc == 0) rc = read_str(l, file, "tokenizer", "char or byte", &kind);
    if (rc == 0 && strcmp(kind, "char") != 0 && strcmp(kind, "byte") != 0)
        rc = ds_fail(l->err, l->errlen, "%s: tokenizer \"%s\": expected char or byte", l->path, kind);
    if (rc == 0) t->is_char = strcmp(kind, "char") == 0;
    free(format);
    free(kind);
    return rc;
}

static int read_vocab(const loader *l, hid_t file, tokenizer *t) {
    char why[256];
    int64_t v;
    const char *expect = t->is_char ? "1 to 1114112 for the char tokenizer" : "256 for the byte tokenizer";
    if (h5_attr_read_i64(file, "vocab_size", &v, why, sizeof why) != 0) return attr_fail(l, "vocab_size", why, expect);
    if (t->is_char ? (v < 1 || v > (int64_t)UTF8_MAX_CP + 1) : v != 256)
        return ds_fail(l->err, l->errlen, "%s: vocab_size %lld: expected %s", l->path, (long long)v, expect);
    t->vocab = (int)v;
    return 0;
}

/* The chars attribute must spell exactly vocab_size code points in ascending order, or ids
 * would not mean what they meant when the file was written. */
static int parse_chars(const loader *l, const char *chars, tokenizer *t) {
    t->cps = malloc((size_t)t->vocab * sizeof *t->cps);
    if (!t->cps) return ds_fail(l->err, l->errlen, "%s: out of memory for the vocabulary", l->path);
    const unsigned char *s = (const unsigned char *)chars;
    size_t len = strlen(chars), i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0)
            return ds_fail(l->err, l->errlen, "%s: attribute 'chars': invalid UTF-8 at byte offset %zu", l->path, i);
        if (n > 0 && cp <= t->cps[n - 1])
            return ds_fail(l->err, l->errlen, "%s: attribute 'chars': U+%04X after U+%04X: expected ascending code "
                           "points", l->path, (unsigned)cp, (unsigned)t->cps[n - 1]);
        if (n < t->vocab) t->cps[n] = cp;
        n++;
        i += (size_t)k;
    }
    if (n != t->vocab)
        return ds_fail(l->err, l->errlen, "%s: attribute 'chars' holds %ld characters: expected vocab_size = %d",
                       l->path, n, t->vocab);
    return 0;
}

static int read_chars(const loader *l, hid_t file, tokenizer *t) {
    char *chars = NULL;
    int rc = read_str(l, file, "chars", "the characters of ids 0, 1, ... as UTF-8", &chars);
    if (rc == 0) rc = parse_chars(l, chars, t);
    free(chars);
    return rc;
}

static int load(const loader *l, tokenizer *t) {
    if (ds_check_readable(l->path, l->err, l->errlen) != 0) return -1;
    hid_t file = H5Fopen(l->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        return ds_fail(l->err, l->errlen, "%s: cannot open as HDF5: %s", l->path, why);
    }
    int rc = read_kind(l, file, t);
    if (rc == 0) rc = read_vocab(l, file, t);
    if (rc == 0 && t->is_char) rc = read_chars(l, file, t);
    H5Fclose(file);
    return rc;
}

tokenizer *tokenizer_load(const char *h5_path, char *err, size_t errlen) {
    tokenizer *t = calloc(1, sizeof *t);
    if (t) t->path = strdup(h5_path);
    if (!t || !t->path) {
        free(t);
        ds_fail(err, errlen, "%s: out of memory", h5_path);
        return NULL;
    }
    loader l = {h5_path, err, errlen};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = load(&l, t);
    h5_quiet_end(&q);
    if (rc != 0) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->cps);
    free(t->path);
    free(t);
}

int tokenizer_vocab_size(const tokenizer *t) { return t->vocab; }

/* ---- encoding and decoding --------------------------------------------------------- */

/* The id of cp, or -1: a binary search, since ids are in code-point order. */
static long find_id(const tokenizer *t, uint32_t cp) {
    long lo = 0, hi = t->vocab;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (t->cps[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->vocab && t->cps[lo] == cp ? lo : -1;
}

/* Control characters would garble a one-line message, so they are named by number only. */
static int unknown_char(const tokenizer *t, const char *text, size_t at, int len, uint32_t cp, char *err,
                        size_t errlen) {
    int printable = cp >= 0x20 && !(cp >= 0x7F && cp < 0xA0);
    return ds_fail(err, errlen, "'%.*s' (U+%04X) at byte offset %zu of the text is not in the vocabulary of %s (%d "
                   "characters)", printable ? len : 0, text + at, (unsigned)cp, at, t->path, t->vocab);
}

static long encode_chars(const tokenizer *t, const char *text, int32_t *out, long cap, char *err, size_t errlen) {
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    long n = 0;
    /* the whole text is checked even past cap, so that an unknown character is never
     * silently dropped with the truncated tail */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k == 0) return ds_fail(err, errlen, "invalid UTF-8 at byte offset %zu of the text (byte 0x%02X)", i, s[i]);
        long id = find_id(t, cp);
        if (id < 0) return unknown_char(t, text, i, k, cp, err, errlen);
        if (n < cap) out[n++] = (int32_t)id;
        i += (size_t)k;
    }
    return n;
}

long tokenizer_encode(const tokenizer *t, const char *text, int32_t *out, long cap, char *err, size_t errlen) {
    if (t->is_char) return encode_chars(t, text, out, cap, err, errlen);
    long n = 0;
    for (const unsigned char *s = (const unsigned char *)text; *s && n < cap; s++) out[n++] = *s;
    return n;
}

int tokenizer_decode(const tokenizer *t, int32_t id, char *buf) {
    if (id < 0 || id >= t->vocab) return 0;
    if (t->is_char) return utf8_encode(t->cps[id], buf);
    buf[0] = (char)(unsigned char)id;
    return 1;
}
