/* tokenizer.c: the char, byte and BPE tokenizers, rebuilt from what a token file (or a
 * token directory's index) records, so that sampling and evaluation need only the token
 * data, not the source text or the tokenizer's files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "bpe.h"
#include "ds_util.h"
#include "token_meta.h"
#include "tokens.h"
#include "utf8.h"

struct tokenizer {
    int is_char;   /* else "byte" or "bpe" */
    bpe *bpe;      /* "bpe" */
    int vocab;
    uint32_t *cps; /* "char": the code point of each id; ascending, because ids follow code-point order */
    char (*bytes)[4]; /* "char" and "byte": the bytes of each id (cps spelled out) */
    char *path;    /* for messages */
    const char *format; /* what "format" must say: a file's or a directory index's */
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
    int rc = read_str(l, file, "format", "a file from dtrain prepare text", &format);
    if (rc == 0 && strcmp(format, t->format) != 0)
        rc = ds_fail(l->err, l->errlen, "%s: format \"%s\": expected \"%s\"", l->path, format, t->format);
    if (rc == 0) rc = read_str(l, file, "tokenizer", "char, byte or bpe", &kind);
    if (rc == 0 && strcmp(kind, "char") != 0 && strcmp(kind, "byte") != 0 && strcmp(kind, "bpe") != 0)
        rc = ds_fail(l->err, l->errlen, "%s: tokenizer \"%s\": expected char, byte or bpe", l->path, kind);
    if (rc == 0) t->is_char = strcmp(kind, "char") == 0;
    if (rc == 0 && strcmp(kind, "bpe") == 0 && !(t->bpe = token_meta_read_bpe(file, l->path, l->err, l->errlen)))
        rc = -1;
    free(format);
    free(kind);
    return rc;
}

static int read_vocab(const loader *l, hid_t file, tokenizer *t) {
    char why[256];
    int64_t v;
    char bpe_expect[96];
    if (t->bpe) snprintf(bpe_expect, sizeof bpe_expect, "%d, the size of the stored BPE vocabulary", bpe_vocab_size(t->bpe));
    const char *expect = t->bpe ? bpe_expect : t->is_char ? "1 to 1114112 for the char tokenizer"
                                                          : "256 for the byte tokenizer";
    if (h5_attr_read_i64(file, "vocab_size", &v, why, sizeof why) != 0) return attr_fail(l, "vocab_size", why, expect);
    if (t->bpe ? v != bpe_vocab_size(t->bpe) : t->is_char ? (v < 1 || v > (int64_t)UTF8_MAX_CP + 1) : v != 256)
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
        /* the table holds vocab_size entries: one character more is an error here, before
         * it is compared with (or stored past) the last entry */
        if (n == t->vocab)
            return ds_fail(l->err, l->errlen, "%s: attribute 'chars' holds more than %d characters: expected "
                           "vocab_size = %d", l->path, t->vocab, t->vocab);
        if (n > 0 && cp <= t->cps[n - 1])
            return ds_fail(l->err, l->errlen, "%s: attribute 'chars': U+%04X after U+%04X: expected ascending code "
                           "points", l->path, (unsigned)cp, (unsigned)t->cps[n - 1]);
        t->cps[n++] = cp;
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

/* "char" and "byte": each id's bytes, so that decoding hands out a pointer as for "bpe" */
static int spell_ids(const loader *l, tokenizer *t) {
    if (t->bpe) return 0;
    t->bytes = calloc((size_t)t->vocab, sizeof *t->bytes);
    if (!t->bytes) return ds_fail(l->err, l->errlen, "%s: out of memory", l->path);
    for (int id = 0; id < t->vocab; id++)
        if (t->is_char)
            utf8_encode(t->cps[id], t->bytes[id]);
        else
            t->bytes[id][0] = (char)(unsigned char)id;
    return 0;
}

tokenizer *tokenizer_load(const char *path, char *err, size_t errlen) {
    tokenizer *t = calloc(1, sizeof *t);
    int dir = token_path_is_dir(path);
    if (t) t->path = dir ? token_dir_file(path, -1) : strdup(path);
    if (!t || !t->path) {
        free(t);
        ds_fail(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    t->format = dir ? TOKEN_INDEX_FORMAT : TOKENS_FORMAT;
    loader l = {t->path, err, errlen};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = load(&l, t);
    if (rc == 0) rc = spell_ids(&l, t);
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
    free(t->bytes);
    bpe_free(t->bpe);
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

static long encode_bpe(const tokenizer *t, const char *text, int32_t *out, long cap, char *err, size_t errlen) {
    idvec ids = {0};
    if (bpe_encode(t->bpe, text, strlen(text), &ids) != 0) {
        idvec_free(&ids);
        return ds_fail(err, errlen, "out of memory encoding the text");
    }
    long n = (long)ids.n < cap ? (long)ids.n : cap;
    if (n > 0) memcpy(out, ids.v, (size_t)n * sizeof *out);
    idvec_free(&ids);
    return n;
}

long tokenizer_encode(const tokenizer *t, const char *text, int32_t *out, long cap, char *err, size_t errlen) {
    if (t->bpe) return encode_bpe(t, text, out, cap, err, errlen);
    if (t->is_char) return encode_chars(t, text, out, cap, err, errlen);
    long n = 0;
    for (const unsigned char *s = (const unsigned char *)text; *s && n < cap; s++) out[n++] = *s;
    return n;
}

int tokenizer_decode(const tokenizer *t, int32_t id, const char **bytes) {
    *bytes = "";
    if (id < 0 || id >= t->vocab) return 0;
    if (t->bpe) {
        int n;
        const char *p = bpe_token_bytes(t->bpe, id, &n);
        *bytes = p ? p : "";
        return n;
    }
    *bytes = t->bytes[id];
    if (!t->is_char) return 1;
    unsigned char lead = (unsigned char)t->bytes[id][0];
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}
