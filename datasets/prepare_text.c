/* prepare_text.c: `dtrain prepare text`, a text file → one HDF5 token file (layout in
 * tokens.h). The whole input is tokenized in memory, split by token count, and written
 * under a temporary name that is renamed into place only when complete. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "bpe.h"
#include "ds_util.h"
#include "token_meta.h"
#include "tokens.h"
#include "utf8.h"
/* 64K tokens (128 KB as uint16) per chunk: a training window of a few hundred tokens
 * touches one or two chunks, and a rank's whole range of a small corpus fits the reader's
 * chunk cache (token_shard.c). */
#define CHUNK_TOKENS 65536

typedef struct {
    const char *in, *out; /* for messages */
    char *err;
    size_t errlen;
} job;

/* The tokenized input: ids in memory as mem_type (the text bytes themselves for "byte"). */
typedef struct {
    const char *tokenizer;
    void *ids;
    hid_t mem_type;
    size_t id_bytes;
    long n;
    long vocab;
    char *chars; /* "char": the UTF-8 of ids 0, 1, ..., NUL-terminated; NULL for "byte" */
    const token_meta *bpe_meta; /* "bpe": the tokenizer's files */
} corpus;

/* ---- reading ----------------------------------------------------------------------- */

/* A loop rather than one fread of st_size, so that pipes and files that grow work too. */
static int read_stream(const job *j, FILE *f, size_t hint, unsigned char **buf, size_t *len) {
    size_t cap = hint + 1, n = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *bigger = cap < ((size_t)-1) / 2 ? realloc(b, cap * 2) : NULL;
        if (!bigger) free(b);
        b = bigger;
        cap *= 2;
    }
    if (!b) return ds_fail(j->err, j->errlen, "%s: out of memory reading the input", j->in);
    if (ferror(f)) {
        free(b);
        return ds_fail(j->err, j->errlen, "%s: cannot read: %s", j->in, strerror(errno));
    }
    *buf = b;
    *len = n;
    return 0;
}

static int read_all(const job *j, unsigned char **buf, size_t *len) {
    FILE *f = fopen(j->in, "rb");
    if (!f) return ds_fail(j->err, j->errlen, "%s: cannot open: %s", j->in, strerror(errno));
    struct stat st;
    int known = fstat(fileno(f), &st) == 0, rc;
    if (known && S_ISDIR(st.st_mode))
        rc = ds_fail(j->err, j->errlen, "%s: is a directory: expected a text file", j->in);
    else
        rc = read_stream(j, f, known && S_ISREG(st.st_mode) ? (size_t)st.st_size : 65536, buf, len);
    fclose(f);
    if (rc == 0 && *len == 0) {
        free(*buf);
        rc = ds_fail(j->err, j->errlen, "%s: is empty: expected text to tokenize", j->in);
    }
    return rc;
}

/* Replacing the input with its own token file would destroy the text. */
static int check_distinct_paths(const job *j) {
    struct stat a, b;
    if (stat(j->in, &a) == 0 && stat(j->out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return ds_fail(j->err, j->errlen, "%s: is also the output file: expected a different --out", j->in);
    return 0;
}

/* ---- the char tokenizer ------------------------------------------------------------ */

/* Pass 1: validates the UTF-8, counts the tokens and marks each code point that occurs. */
static int scan_code_points(const job *j, const unsigned char *text, size_t len, uint32_t *seen, long *n) {
    *n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(text + i, len - i, &cp);
        if (k == 0)
            return ds_fail(j->err, j->errlen, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02X): the char "
                           "tokenizer needs UTF-8 text; use the byte tokenizer for other data", j->in, i, text[i]);
        /* the chars attribute is a C string, so it cannot hold U+0000 */
        if (cp == 0)
            return ds_fail(j->err, j->errlen, "%s: NUL character at byte offset %zu: the char tokenizer cannot "
                           "record U+0000; use the byte tokenizer", j->in, i);
        seen[cp] = 1;
        (*n)++;
        i += (size_t)k;
    }
    return 0;
}

/* Turns the seen-marks into ids in code-point order (id_of[cp]) and spells them out in
 * c->chars. */
static int number_code_points(const job *j, uint32_t *id_of, corpus *c) {
    c->vocab = 0;
    for (uint32_t cp = 0; cp <= UTF8_MAX_CP; cp++) c->vocab += id_of[cp] != 0;
    c->chars = malloc((size_t)c->vocab * 4 + 1);
    if (!c->chars) return ds_fail(j->err, j->errlen, "%s: out of memory for the vocabulary", j->in);
    size_t len = 0;
    uint32_t id = 0;
    for (uint32_t cp = 0; cp <= UTF8_MAX_CP; cp++) {
        if (!id_of[cp]) continue;
        id_of[cp] = id++;
        len += (size_t)utf8_encode(cp, c->chars + len);
    }
    c->chars[len] = '\0';
    return 0;
}

/* Pass 2: the ids, as uint16 when they fit (half the memory and the file), else uint32. */
static int write_char_ids(const job *j, const unsigned char *text, size_t len, const uint32_t *id_of,
                          corpus *c) {
    int wide = c->vocab > U16_VOCAB_MAX;
    c->id_bytes = wide ? 4 : 2;
    c->mem_type = wide ? H5T_NATIVE_UINT32 : H5T_NATIVE_UINT16;
    c->ids = malloc((size_t)c->n * c->id_bytes);
    if (!c->ids) return ds_fail(j->err, j->errlen, "%s: out of memory for %ld tokens", j->in, c->n);
    uint16_t *ids16 = c->ids;
    uint32_t *ids32 = c->ids;
    long t = 0;
    for (size_t i = 0; i < len; t++) {
        uint32_t cp;
        i += (size_t)utf8_decode(text + i, len - i, &cp); /* valid: scan_code_points checked it */
        if (wide)
            ids32[t] = id_of[cp];
        else
            ids16[t] = (uint16_t)id_of[cp];
    }
    return 0;
}

static int tokenize_chars(const job *j, const unsigned char *text, size_t len, corpus *c) {
    /* one slot per possible code point (4.4 MB): O(1) lookups and code-point order for free */
    uint32_t *id_of = calloc((size_t)UTF8_MAX_CP + 1, sizeof *id_of);
    if (!id_of) return ds_fail(j->err, j->errlen, "%s: out of memory", j->in);
    int rc = scan_code_points(j, text, len, id_of, &c->n);
    if (rc == 0) rc = number_code_points(j, id_of, c);
    if (rc == 0) rc = write_char_ids(j, text, len, id_of, c);
    free(id_of);
    return rc;
}

/* The byte tokenizer needs no pass: the text is its own id array, widened by HDF5 as it
 * writes uint8 memory into the uint16 dataset. */
static void tokenize_bytes(unsigned char *text, size_t len, corpus *c) {
    c->ids = text;
    c->mem_type = H5T_NATIVE_UINT8;
    c->id_bytes = 1;
    c->n = (long)len;
    c->vocab = 256;
}

/* ---- the BPE tokenizer --------------------------------------------------------------- */

static int tokenize_bpe(const job *j, const unsigned char *text, size_t len, bpe *b, corpus *c) {
    idvec ids = {0};
    if (bpe_encode(b, (const char *)text, len, &ids) != 0) {
        idvec_free(&ids);
        return ds_fail(j->err, j->errlen, "%s: out of memory encoding", j->in);
    }
    c->vocab = bpe_vocab_size(b);
    int wide = c->vocab > U16_VOCAB_MAX;
    c->n = (long)ids.n;
    c->id_bytes = wide ? 4 : 2;
    c->mem_type = wide ? H5T_NATIVE_UINT32 : H5T_NATIVE_UINT16;
    if (wide) {
        c->ids = ids.v; /* int32 ids below 2^24 read the same as uint32 */
        return 0;
    }
    uint16_t *narrow = malloc(ids.n * sizeof *narrow + 1);
    if (!narrow) {
        idvec_free(&ids);
        return ds_fail(j->err, j->errlen, "%s: out of memory", j->in);
    }
    for (size_t i = 0; i < ids.n; i++) narrow[i] = (uint16_t)ids.v[i];
    idvec_free(&ids);
    c->ids = narrow;
    return 0;
}

/* ---- the split --------------------------------------------------------------------- */

/* floor(n * (1 - val_fraction)), except that a product within a relative 1e-9 of an
 * integer counts as that integer, so binary rounding of the fraction cannot move a token
 * across the split (10 tokens at 0.3 give 7 for training, not 6). */
static long train_count(long n, double val_fraction) {
    double x = (double)n * (1.0 - val_fraction), r = nearbyint(x);
    if (fabs(x - r) <= 1e-9 * (x > 1.0 ? x : 1.0)) return (long)r;
    return (long)floor(x);
}

static int check_split(const job *j, const corpus *c, double val_fraction, long ntrain) {
    const char *empty = ntrain < 1 ? "train" : ntrain >= c->n ? "val" : NULL;
    if (!empty) return 0;
    return ds_fail(j->err, j->errlen, "%s: %ld token%s with val_fraction %g leave%s the %s split empty: expected "
                   "more text or another val_fraction", j->in, c->n, c->n == 1 ? "" : "s", val_fraction,
                   c->n == 1 ? "s" : "", empty);
}

/* ---- writing: every function closes what it opened, on every path ----------------- */

static int h5_fail(const job *j, const char *what) {
    char why[512];
    h5_last_error(why, sizeof why);
    return ds_fail(j->err, j->errlen, "%s: cannot write %s: %s", j->out, what, why);
}

static int write_root_attrs(const job *j, hid_t file, const corpus *c) {
    token_meta m = {c->tokenizer, c->vocab, c->chars, NULL, NULL, 0, 0};
    if (c->bpe_meta) m = *c->bpe_meta;
    return token_meta_write(file, TOKENS_FORMAT, j->in, &m) == 0 ? 0 : h5_fail(j, "the tokenizer's attributes");
}

/* GROUP/tokens = ids [first, first + count), chunked, with a Fletcher32 checksum per chunk
 * that HDF5 verifies on read (token_shard.c reports a mismatch as a corrupted file). */
static int write_tokens(const job *j, hid_t group, const char *what, const corpus *c, long first, long count) {
    hsize_t dims[1] = {(hsize_t)count}, chunk[1] = {count < CHUNK_TOKENS ? (hsize_t)count : CHUNK_TOKENS};
    hid_t file_type = c->vocab > U16_VOCAB_MAX ? H5T_STD_U32LE : H5T_STD_U16LE;
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dset = H5I_INVALID_HID;
    const char *data = (const char *)c->ids + (size_t)first * c->id_bytes;
    int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0 &&
             (dset = H5Dcreate2(group, "tokens", file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(dset, c->mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    int rc = ok ? 0 : h5_fail(j, what);
    if (dset >= 0) H5Dclose(dset);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int write_split(const job *j, hid_t file, const char *name, const corpus *c, long first, long count) {
    char what[64];
    snprintf(what, sizeof what, "/%s", name);
    hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return h5_fail(j, what);
    snprintf(what, sizeof what, "/%s/tokens", name);
    int rc = h5_attr_write_i64(group, "count", count) == 0 ? 0 : h5_fail(j, "attribute count");
    if (rc == 0) rc = write_tokens(j, group, what, c, first, count);
    H5Gclose(group);
    return rc;
}

static int write_file(const job *j, const char *tmp, const corpus *c, long ntrain) {
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return h5_fail(j, "the file");
    int rc = write_root_attrs(j, file, c);
    if (rc == 0) rc = write_split(j, file, "train", c, 0, ntrain);
    if (rc == 0) rc = write_split(j, file, "val", c, ntrain, c->n - ntrain);
    if (rc == 0 && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) rc = h5_fail(j, "the file (flush)");
    if (H5Fclose(file) < 0 && rc == 0) rc = h5_fail(j, "the file (close)");
    return rc;
}

static int write_and_rename(const job *j, const corpus *c, long ntrain) {
    size_t len = strlen(j->out) + 32;
    char *tmp = malloc(len);
    if (!tmp) return ds_fail(j->err, j->errlen, "%s: out of memory", j->out);
    /* same directory as the output, so the rename cannot cross file systems */
    snprintf(tmp, len, "%s.tmp.%ld", j->out, (long)getpid());
    if (ds_tmp_guard_begin(tmp, j->err, j->errlen) != 0) {
        free(tmp);
        return -1;
    }
    /* created here first because open(2)'s errno says "No such file or directory" plainly,
     * where HDF5's message for a missing directory is a paragraph */
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) rc = ds_fail(j->err, j->errlen, "%s: cannot create %s: %s", j->out, tmp, strerror(errno));
    if (rc == 0) {
        close(fd);
        h5_quiet q;
        h5_quiet_begin(&q);
        rc = write_file(j, tmp, c, ntrain);
        h5_quiet_end(&q);
        if (rc == 0)
            rc = ds_sync_and_rename(tmp, j->out, j->err, j->errlen);
        else
            remove(tmp);
    }
    ds_tmp_guard_end();
    free(tmp);
    return rc;
}

/* ---- the entry point --------------------------------------------------------------- */

static int known_tokenizer(const char *t) {
    return t && (strcmp(t, "char") == 0 || strcmp(t, "byte") == 0 || strcmp(t, "bpe") == 0);
}

static int check_job(const text_job *tj, char *err, size_t errlen) {
    const char *in = tj->nin > 0 ? tj->in[0] : tj->out;
    if (!known_tokenizer(tj->tokenizer))
        return ds_fail(err, errlen, "%s: tokenizer '%s': expected char, byte or bpe", in,
                       tj->tokenizer ? tj->tokenizer : "(null)");
    if (strcmp(tj->tokenizer, "bpe") == 0 && !tj->bpe_dir)
        return ds_fail(err, errlen, "%s: the bpe tokenizer needs --bpe DIR (vocab.json and merges.txt, e.g. from "
                       "dtrain prepare bpe)", in);
    if (!(tj->val_fraction > 0.0 && tj->val_fraction < 1.0)) /* written so that NaN fails too */
        return ds_fail(err, errlen, "%s: val_fraction %g: expected a value in (0, 1)", in, tj->val_fraction);
    if (tj->nin < 1) return ds_fail(err, errlen, "%s: no input: expected --in FILE|DIR|-", tj->out);
    return 0;
}

/* Several inputs, standard input or a directory can only be streamed: a token directory. */
static int needs_stream(const text_job *tj) {
    struct stat st;
    return tj->nin != 1 || strcmp(tj->in[0], "-") == 0 || (stat(tj->in[0], &st) == 0 && S_ISDIR(st.st_mode));
}

/* One file, in memory: the layout described first in tokens.h. */
static int prepare_one_file(const text_job *tj, bpe *b, const token_meta *m, char *err, size_t errlen) {
    job j = {tj->in[0], tj->out, err, errlen};
    if (tj->nin != 1 || strcmp(tj->in[0], "-") == 0) {
        ds_fail(err, errlen, "%s: one token file is made from one input file: several inputs, a directory or "
                "standard input make a token directory", tj->out);
        return PREPARE_BAD_INPUT;
    }
    unsigned char *text = NULL;
    size_t len = 0;
    if (check_distinct_paths(&j) != 0 || read_all(&j, &text, &len) != 0) return PREPARE_BAD_INPUT;
    corpus c = {.tokenizer = tj->tokenizer, .bpe_meta = b ? m : NULL};
    int rc = 0;
    if (b && memchr(text, 0, len))
        rc = ds_fail(err, errlen, "%s: NUL byte at offset %zu: expected text (is it a binary file?)", j.in,
                     (size_t)((unsigned char *)memchr(text, 0, len) - text));
    else if (b)
        rc = tokenize_bpe(&j, text, len, b, &c);
    else if (strcmp(tj->tokenizer, "byte") == 0)
        tokenize_bytes(text, len, &c);
    else
        rc = tokenize_chars(&j, text, len, &c);
    long ntrain = rc == 0 ? train_count(c.n, tj->val_fraction) : 0;
    if (rc == 0) rc = check_split(&j, &c, tj->val_fraction, ntrain);
    if (rc != 0) rc = PREPARE_BAD_INPUT;
    else if (write_and_rename(&j, &c, ntrain) != 0) rc = PREPARE_FAILED;
    if (c.ids != text) free(c.ids);
    free(c.chars);
    free(text);
    return rc;
}

/* The BPE tokenizer and the raw bytes of its two files (recorded in the output, so that
 * sampling needs only the token data). */
static bpe *load_bpe(const char *dir, token_meta *m, char **raw_vocab, char **raw_merges, char *err, size_t errlen) {
    bpe *b = bpe_load_dir(dir, err, errlen);
    if (!b) return NULL;
    size_t len = strlen(dir) + 16;
    char *p = malloc(len);
    if (p) {
        snprintf(p, len, "%s/vocab.json", dir);
        *raw_vocab = ds_read_file(p, &m->vocab_len, err, errlen);
        snprintf(p, len, "%s/merges.txt", dir);
        *raw_merges = *raw_vocab ? ds_read_file(p, &m->merges_len, err, errlen) : NULL;
    }
    free(p);
    if (!*raw_vocab || !*raw_merges) {
        if (!p) ds_fail(err, errlen, "%s: out of memory", dir);
        bpe_free(b);
        return NULL;
    }
    m->vocab_json = *raw_vocab;
    m->merges = *raw_merges;
    m->vocab = bpe_vocab_size(b);
    return b;
}

int prepare_text_job(const text_job *tj, char *err, size_t errlen) {
    if (check_job(tj, err, errlen) != 0) return PREPARE_BAD_INPUT;
    int to_file = tj->shard_tokens == 0 && !needs_stream(tj);
    if (!to_file && strcmp(tj->tokenizer, "char") == 0) {
        ds_fail(err, errlen, "%s: the char tokenizer numbers the characters of the whole text, so it writes one .h5 "
                "file from one input file: use --tokenizer byte or bpe for a token directory", tj->out);
        return PREPARE_BAD_INPUT;
    }
    if (tj->shard_tokens < 0) {
        ds_fail(err, errlen, "%s: shard_tokens %ld: expected a positive number of ids per shard", tj->out,
                tj->shard_tokens);
        return PREPARE_BAD_INPUT;
    }
    text_job dir_job = *tj;
    if (dir_job.shard_tokens == 0) dir_job.shard_tokens = TOKEN_SHARD_DEFAULT;
    tj = &dir_job;
    token_meta m = {tj->tokenizer, 256, NULL, NULL, NULL, 0, 0};
    char *raw_vocab = NULL, *raw_merges = NULL;
    bpe *b = NULL;
    if (strcmp(tj->tokenizer, "bpe") == 0 && !(b = load_bpe(tj->bpe_dir, &m, &raw_vocab, &raw_merges, err, errlen)))
        return PREPARE_BAD_INPUT;
    int rc = to_file ? prepare_one_file(tj, b, &m, err, errlen) : prepare_text_dir(tj, b, &m, err, errlen);
    bpe_free(b);
    free(raw_vocab);
    free(raw_merges);
    return rc;
}

int prepare_text(const char *in_path, const char *out_path, const char *tokenizer, double val_fraction, char *err,
                 size_t errlen) {
    const char *in[1] = {in_path};
    text_job tj = {in, 1, out_path, tokenizer, NULL, val_fraction, 0};
    if (!known_tokenizer(tokenizer) || strcmp(tokenizer, "bpe") == 0) {
        ds_fail(err, errlen, "%s: tokenizer '%s': expected char or byte", in_path, tokenizer ? tokenizer : "(null)");
        return PREPARE_BAD_INPUT;
    }
    if (check_job(&tj, err, errlen) != 0) return PREPARE_BAD_INPUT;
    return prepare_one_file(&tj, NULL, NULL, err, errlen);
}
