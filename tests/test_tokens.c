/* tokens: prepare_text's counts, split rule and layout; the tokenizers' round trips; token
 * shards that partition a split exactly; one-line errors and no partial output. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "pretok.h"
#include "tokens.h"

static char tmp[256]; /* this test's scratch directory; each test runs in its own process */


static void setup(void) {
    cr_assert_not_null(test_mkdtemp(tmp, sizeof tmp, "tokens"));
}

static void teardown(void) { test_rm_tree(tmp); }

TestSuite(prepare, .init = setup, .fini = teardown);
TestSuite(tokenizer, .init = setup, .fini = teardown);
TestSuite(tshard, .init = setup, .fini = teardown);

/* ---- helpers ----------------------------------------------------------------------- */

static pathbuf shakespeare_txt(void) {
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    return path_join(src ? src : ".", "data/tinyshakespeare.txt");
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static char *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    if (d) closedir(d);
    return n;
}

/* TEXT written to tmp/in.txt and prepared into tmp/NAME. */
static pathbuf prepare_str(const char *text, size_t len, const char *tokenizer, double val, const char *name) {
    pathbuf in = path_join(tmp, "in.txt"), out = path_join(tmp, name);
    write_bytes(in.s, text, len);
    char err[512];
    cr_assert_eq(prepare_text(in.s, out.s, tokenizer, val, err, sizeof err), 0, "%s", err);
    return out;
}

static pathbuf shakespeare_h5(const char *tokenizer) {
    pathbuf in = shakespeare_txt(), out = path_join(tmp, "ts.h5");
    char err[512];
    cr_assert_eq(prepare_text(in.s, out.s, tokenizer, 0.1, err, sizeof err), 0, "%s", err);
    return out;
}

static token_shard *open_ok(const char *path, const char *split, int rank, int world) {
    char err[512];
    token_shard *s = token_shard_open(path, split, rank, world, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    return s;
}

/* The whole split, through a one-rank shard. */
static int32_t *read_split(const char *path, const char *split, long *n) {
    token_shard *s = open_ok(path, split, 0, 1);
    *n = token_shard_size(s);
    int32_t *ids = malloc((size_t)*n * sizeof *ids + 1);
    char err[512];
    cr_assert_eq(token_shard_read(s, 0, *n, ids, err, sizeof err), 0, "%s", err);
    token_shard_close(s);
    return ids;
}

/* train followed by val: every token of the file in order */
static int32_t *read_all_ids(const char *path, long *n) {
    long nt, nv;
    int32_t *t = read_split(path, "train", &nt), *v = read_split(path, "val", &nv);
    t = realloc(t, (size_t)(nt + nv) * sizeof *t);
    memcpy(t + nt, v, (size_t)nv * sizeof *v);
    free(v);
    *n = nt + nv;
    return t;
}

/* ids decoded back to bytes, tokens of any length */
static char *decode_all_any(const tokenizer *t, const int32_t *ids, long n, size_t *len) {
    size_t cap = 64, k = 0;
    char *out = malloc(cap);
    for (long i = 0; out && i < n; i++) {
        const char *b;
        int m = tokenizer_decode(t, ids[i], &b);
        while (k + (size_t)m + 1 > cap) out = realloc(out, cap *= 2);
        if (out) memcpy(out + k, b, (size_t)m);
        k += (size_t)m;
    }
    cr_assert_not_null(out);
    out[k] = '\0';
    *len = k;
    return out;
}

/* ids decoded back to bytes */
static char *decode_all(const tokenizer *t, const int32_t *ids, long n, size_t *len) {
    char *out = malloc((size_t)n * 4 + 1);
    size_t k = 0;
    for (long i = 0; i < n; i++) {
        const char *b;
        int m = tokenizer_decode(t, ids[i], &b);
        cr_assert(m <= 4);
        memcpy(out + k, b, (size_t)m);
        k += (size_t)m;
    }
    out[k] = '\0';
    *len = k;
    return out;
}

static tokenizer *load_ok(const char *path) {
    char err[512];
    tokenizer *t = tokenizer_load(path, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    return t;
}

/* Every handle closed on every path: nothing of HDF5's may stay open after a call. */
static void expect_no_open_h5(void) {
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    cr_expect_eq(n, 0, "%zd HDF5 objects left open", n);
}

/* prepare_text must fail with a message containing want, and leave tmp as it found it. */
static void expect_prepare_fails(const char *in, const char *tokenizer, double val, const char *want) {
    pathbuf out = path_join(tmp, "out.h5");
    int before = entries(tmp);
    char err[512] = "";
    cr_assert_eq(prepare_text(in, out.s, tokenizer, val, err, sizeof err), PREPARE_BAD_INPUT,
                 "expected a bad-input failure (%s)", want);
    cr_expect(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    cr_expect_null(strchr(err, '\n'), "error is not one line: %s", err);
    cr_expect(!exists(out.s), "partial output left behind");
    cr_expect_eq(entries(tmp), before, "a temporary file was left behind");
    expect_no_open_h5();
}

static void expect_text_fails(const char *text, size_t len, const char *tokenizer, double val, const char *want) {
    pathbuf in = path_join(tmp, "in.txt");
    write_bytes(in.s, text, len);
    expect_prepare_fails(in.s, tokenizer, val, want);
}

/* ---- prepare_text ------------------------------------------------------------------ */

/* Split rule: train = floor(N * (1 - val_fraction)). 1,115,394 * 0.9 = 1,003,854.6. */
Test(prepare, shakespeare_char_counts_and_vocab) {
    pathbuf h5 = shakespeare_h5("char");
    token_shard *t = open_ok(h5.s, "train", 0, 1), *v = open_ok(h5.s, "val", 0, 1);
    cr_expect_eq(token_shard_total(t), 1003854);
    cr_expect_eq(token_shard_total(v), 111540);
    cr_expect_eq(token_shard_vocab_size(t), 65);
    token_shard_close(t);
    token_shard_close(v);
}

Test(prepare, shakespeare_chars_decode_the_text) {
    pathbuf h5 = shakespeare_h5("char");
    size_t len;
    char *text = read_bytes(shakespeare_txt().s, &len);
    tokenizer *tok = load_ok(h5.s);
    cr_assert_eq(tokenizer_vocab_size(tok), 65);
    token_shard *s = open_ok(h5.s, "train", 0, 1);
    int32_t ids[1000];
    char err[512];
    cr_assert_eq(token_shard_read(s, 0, 1000, ids, err, sizeof err), 0, "%s", err);
    size_t k;
    char *back = decode_all(tok, ids, 1000, &k);
    cr_expect_eq(k, 1000); /* tinyshakespeare is ASCII: one byte per character */
    cr_expect_eq(memcmp(back, text, 1000), 0, "decoded: %.60s...", back);
    /* ids in code-point order: '\n' (10) is the smallest character, then ' ' */
    const char *b;
    cr_expect(tokenizer_decode(tok, 0, &b) == 1 && b[0] == '\n');
    cr_expect(tokenizer_decode(tok, 1, &b) == 1 && b[0] == ' ');
    free(back);
    free(text);
    token_shard_close(s);
    tokenizer_free(tok);
}

static void expect_str_attr(hid_t obj, const char *name, const char *want) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    cr_assert_geq(a, 0, "attribute %s missing", name);
    hid_t type = H5Aget_type(a);
    /* variable-length UTF-8 is what h5py returns as str */
    cr_expect_gt(H5Tis_variable_str(type), 0, "%s is not a variable-length string", name);
    cr_expect_eq(H5Tget_cset(type), H5T_CSET_UTF8, "%s is not UTF-8", name);
    char *v = NULL;
    cr_assert_geq(H5Aread(a, type, &v), 0);
    if (want) cr_expect_str_eq(v, want, "attribute %s", name);
    H5free_memory(v);
    H5Tclose(type);
    H5Aclose(a);
}

static int64_t i64_attr(hid_t obj, const char *name) {
    int64_t v = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    cr_assert_geq(a, 0, "attribute %s missing", name);
    cr_assert_geq(H5Aread(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    return v;
}

static void expect_tokens_dataset(hid_t file, const char *dpath, hid_t want_type, hsize_t want_n) {
    hid_t d = H5Dopen2(file, dpath, H5P_DEFAULT);
    cr_assert_geq(d, 0, "%s missing", dpath);
    hid_t type = H5Dget_type(d), space = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t n = 0, chunk = 0;
    H5Sget_simple_extent_dims(space, &n, NULL);
    cr_expect_gt(H5Tequal(type, want_type), 0, "%s has the wrong type", dpath);
    cr_expect_eq(n, want_n, "%s: %llu tokens", dpath, (unsigned long long)n);
    cr_assert_eq(H5Pget_layout(dcpl), H5D_CHUNKED, "%s is not chunked", dpath);
    H5Pget_chunk(dcpl, 1, &chunk);
    cr_expect(chunk >= 1024 && chunk <= 65536, "%s: chunk of %llu tokens", dpath, (unsigned long long)chunk);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(d);
}

Test(prepare, layout_and_attributes) {
    pathbuf h5 = shakespeare_h5("char");
    hid_t f = H5Fopen(h5.s, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    expect_str_attr(f, "format", "dtrain-tokens-v1");
    expect_str_attr(f, "tokenizer", "char");
    expect_str_attr(f, "source", shakespeare_txt().s);
    expect_str_attr(f, "chars", "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    cr_expect_eq(i64_attr(f, "vocab_size"), 65);
    hid_t g = H5Gopen2(f, "train", H5P_DEFAULT);
    cr_expect_eq(i64_attr(g, "count"), 1003854);
    H5Gclose(g);
    g = H5Gopen2(f, "val", H5P_DEFAULT);
    cr_expect_eq(i64_attr(g, "count"), 111540);
    H5Gclose(g);
    expect_tokens_dataset(f, "/train/tokens", H5T_STD_U16LE, 1003854);
    expect_tokens_dataset(f, "/val/tokens", H5T_STD_U16LE, 111540);
    H5Fclose(f);
}

Test(prepare, split_is_floor_of_train_fraction) {
    /* {tokens, val_fraction, train}: floor(N (1 - f)), products within 1e-9 of an integer
     * taken as that integer (10 x 0.7 is 6.9999999999999996 in binary) */
    struct {
        int n;
        double val;
        long train;
    } cases[] = {{10, 0.3, 7}, {10, 0.25, 7}, {3, 0.5, 1}, {10, 0.1, 9}, {7, 0.5, 3}, {100, 0.001, 99}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char text[128];
        memset(text, 'a', sizeof text);
        pathbuf h5 = prepare_str(text, (size_t)cases[c].n, "char", cases[c].val, "split.h5");
        token_shard *t = open_ok(h5.s, "train", 0, 1), *v = open_ok(h5.s, "val", 0, 1);
        cr_expect_eq(token_shard_total(t), cases[c].train, "N=%d val=%g: train %ld", cases[c].n, cases[c].val,
                     token_shard_total(t));
        cr_expect_eq(token_shard_total(v), cases[c].n - cases[c].train);
        token_shard_close(t);
        token_shard_close(v);
        unlink(h5.s);
    }
}

Test(prepare, byte_level_round_trip) {
    /* every byte value, NUL and invalid UTF-8 included */
    unsigned char data[1000];
    for (int i = 0; i < 1000; i++) data[i] = (unsigned char)(i * 37 + i / 256);
    pathbuf h5 = prepare_str((const char *)data, sizeof data, "byte", 0.2, "bytes.h5");
    tokenizer *tok = load_ok(h5.s);
    cr_expect_eq(tokenizer_vocab_size(tok), 256);
    long n;
    int32_t *ids = read_all_ids(h5.s, &n);
    cr_assert_eq(n, 1000);
    for (long i = 0; i < n; i++) cr_assert_eq(ids[i], data[i], "token %ld", i);
    size_t len;
    char *back = decode_all(tok, ids, n, &len);
    cr_expect_eq(len, 1000);
    cr_expect_eq(memcmp(back, data, 1000), 0);
    free(back);
    free(ids);
    tokenizer_free(tok);
}

Test(prepare, byte_level_shakespeare) {
    pathbuf h5 = shakespeare_h5("byte");
    size_t len;
    char *text = read_bytes(shakespeare_txt().s, &len);
    long n;
    int32_t *ids = read_all_ids(h5.s, &n);
    cr_assert_eq((size_t)n, len);
    for (long i = 0; i < n; i++) cr_assert_eq(ids[i], (unsigned char)text[i], "token %ld", i);
    token_shard *s = open_ok(h5.s, "train", 0, 1);
    cr_expect_eq(token_shard_total(s), 1003854);
    cr_expect_eq(token_shard_vocab_size(s), 256);
    token_shard_close(s);
    free(ids);
    free(text);
}

Test(prepare, multibyte_utf8_round_trip) {
    /* "héllo ✓ wörld 🙂 ✓é!\n": 2-, 3- and 4-byte characters */
    const char *text = "h\xc3\xa9llo \xe2\x9c\x93 w\xc3\xb6rld \xf0\x9f\x99\x82 \xe2\x9c\x93\xc3\xa9!\n";
    pathbuf h5 = prepare_str(text, strlen(text), "char", 0.25, "utf8.h5");
    tokenizer *tok = load_ok(h5.s);
    /* \n space ! d h l o r w é ö ✓ 🙂 */
    cr_assert_eq(tokenizer_vocab_size(tok), 13);
    long n;
    int32_t *ids = read_all_ids(h5.s, &n);
    cr_assert_eq(n, 20, "20 characters, %ld tokens", n);
    int32_t enc[64];
    char err[512];
    cr_assert_eq(tokenizer_encode(tok, text, enc, 64, err, sizeof err), 20, "%s", err);
    cr_expect_eq(memcmp(enc, ids, sizeof *ids * 20), 0, "encode disagrees with the file");
    size_t len;
    char *back = decode_all(tok, ids, n, &len);
    cr_expect_str_eq(back, text);
    const char *b;
    cr_expect(tokenizer_decode(tok, 11, &b) == 3 && memcmp(b, "\xe2\x9c\x93", 3) == 0, "id 11 is not U+2713");
    cr_expect(tokenizer_decode(tok, 12, &b) == 4 && memcmp(b, "\xf0\x9f\x99\x82", 4) == 0, "id 12 is not U+1F642");
    free(back);
    free(ids);
    tokenizer_free(tok);
}

/* More than 65,536 distinct characters: the ids no longer fit uint16. */
Test(prepare, wide_vocabulary_uses_uint32) {
    enum { FIRST = 0x4E00, COUNT = 70000 }; /* U+4E00.. and on, no surrogates in this range */
    char *text = malloc(COUNT * 4 + 1);
    size_t len = 0;
    for (uint32_t cp = FIRST; cp < FIRST + COUNT; cp++) {
        uint32_t c = cp < 0xD800 ? cp : cp + 0x800; /* hop over the surrogates */
        if (c < 0x10000) {
            text[len++] = (char)(0xE0 | (c >> 12));
        } else {
            text[len++] = (char)(0xF0 | (c >> 18));
            text[len++] = (char)(0x80 | ((c >> 12) & 0x3F));
        }
        text[len++] = (char)(0x80 | ((c >> 6) & 0x3F));
        text[len++] = (char)(0x80 | (c & 0x3F));
    }
    text[len] = '\0';
    pathbuf h5 = prepare_str(text, len, "char", 0.5, "wide.h5");
    hid_t f = H5Fopen(h5.s, H5F_ACC_RDONLY, H5P_DEFAULT);
    expect_tokens_dataset(f, "/train/tokens", H5T_STD_U32LE, COUNT / 2);
    H5Fclose(f);
    long n;
    int32_t *ids = read_all_ids(h5.s, &n);
    cr_assert_eq(n, COUNT);
    for (long i = 0; i < n; i++) cr_assert_eq(ids[i], i, "distinct ascending characters get ids 0, 1, ...");
    tokenizer *tok = load_ok(h5.s);
    cr_expect_eq(tokenizer_vocab_size(tok), COUNT);
    size_t back_len;
    char *back = decode_all(tok, ids, n, &back_len);
    cr_expect_eq(back_len, len);
    cr_expect_eq(memcmp(back, text, len), 0);
    free(back);
    free(ids);
    free(text);
    tokenizer_free(tok);
}

Test(prepare, invalid_utf8_names_the_offset) {
    expect_text_fails("abc\xff", 4, "char", 0.1, "byte offset 3");
    expect_text_fails("ab\xe2\x9c", 4, "char", 0.1, "byte offset 2");          /* truncated ✓ */
    expect_text_fails("abcde\xc0\xaf", 7, "char", 0.1, "byte offset 5");       /* overlong '/' */
    expect_text_fails("x\xed\xa0\x80yz", 6, "char", 0.1, "byte offset 1");     /* surrogate */
    expect_text_fails("\x80hello", 6, "char", 0.1, "byte offset 0");           /* stray continuation */
    expect_text_fails("ok\xf4\x90\x80\x80", 6, "char", 0.1, "byte offset 2"); /* above U+10FFFF */
    expect_text_fails("abc\xff", 4, "char", 0.1, "in.txt");
}

Test(prepare, nul_is_not_a_char_token) {
    expect_text_fails("ab\0cd", 5, "char", 0.1, "byte offset 2");
}

Test(prepare, empty_input) {
    expect_text_fails("", 0, "char", 0.1, "empty");
    expect_text_fails("", 0, "byte", 0.1, "in.txt");
}

Test(prepare, missing_input_is_named) {
    pathbuf in = path_join(tmp, "no_such_corpus.txt");
    expect_prepare_fails(in.s, "char", 0.1, "no_such_corpus.txt: cannot open");
    expect_prepare_fails(tmp, "char", 0.1, "directory");
}

Test(prepare, bad_arguments) {
    const char *text = "hello world\n";
    expect_text_fails(text, strlen(text), "char", 0.0, "val_fraction");
    expect_text_fails(text, strlen(text), "char", 1.0, "val_fraction");
    expect_text_fails(text, strlen(text), "char", -0.5, "(0, 1)");
    expect_text_fails(text, strlen(text), "char", 0.0 / 0.0, "val_fraction");
    expect_text_fails(text, strlen(text), "bpe", 0.1, "tokenizer 'bpe': expected char or byte");
}

Test(prepare, empty_splits) {
    expect_text_fails("a", 1, "char", 0.1, "train split empty");     /* floor(0.9) = 0 */
    expect_text_fails("abcde", 5, "byte", 0.9, "train split empty"); /* floor(0.5) = 0 */
    expect_text_fails("abcdefghij", 10, "char", 1e-12, "val split empty");
}

Test(prepare, output_failures_leave_nothing) {
    pathbuf in = path_join(tmp, "in.txt"), out = path_join(tmp, "no_dir/out.h5");
    write_bytes(in.s, "hello\n", 6);
    char err[512] = "";
    cr_assert_eq(prepare_text(in.s, out.s, "char", 0.5, err, sizeof err), PREPARE_FAILED, "a write failure");
    cr_expect(strstr(err, "no_dir/out.h5") != NULL, "%s", err);
    cr_expect_eq(entries(tmp), 1);
    /* writing over the input would destroy it */
    cr_assert_neq(prepare_text(in.s, in.s, "char", 0.5, err, sizeof err), 0);
    cr_expect(strstr(err, "output") != NULL, "%s", err);
    size_t len;
    char *still = read_bytes(in.s, &len);
    cr_expect(len == 6 && memcmp(still, "hello\n", 6) == 0, "the input was damaged");
    free(still);
}

Test(prepare, replaces_an_existing_output) {
    pathbuf h5 = prepare_str("aaaa", 4, "char", 0.5, "again.h5");
    h5 = prepare_str("abcdefgh", 8, "char", 0.5, "again.h5");
    token_shard *s = open_ok(h5.s, "train", 0, 1);
    cr_expect_eq(token_shard_total(s), 4);
    cr_expect_eq(token_shard_vocab_size(s), 8);
    token_shard_close(s);
    cr_expect_eq(entries(tmp), 2, "in.txt and again.h5, no temporaries");
}

/* ---- the tokenizer ----------------------------------------------------------------- */

Test(tokenizer, unknown_character_is_named) {
    pathbuf h5 = shakespeare_h5("char");
    tokenizer *tok = load_ok(h5.s);
    int32_t ids[64];
    char err[512] = "";
    cr_expect_eq(tokenizer_encode(tok, "Hello \xe2\x9c\x93 there", ids, 64, err, sizeof err), -1);
    cr_expect(strstr(err, "\xe2\x9c\x93") && strstr(err, "U+2713") && strstr(err, "byte offset 6"), "%s", err);
    cr_expect_eq(tokenizer_encode(tok, "tab\there", ids, 64, err, sizeof err), -1);
    cr_expect(strstr(err, "U+0009") != NULL && strchr(err, '\t') == NULL, "%s", err);
    cr_expect_eq(tokenizer_encode(tok, "bad \xff", ids, 64, err, sizeof err), -1);
    cr_expect(strstr(err, "invalid UTF-8 at byte offset 4") != NULL, "%s", err);
    tokenizer_free(tok);
}

Test(tokenizer, encode_decode_and_padding) {
    pathbuf h5 = shakespeare_h5("char");
    tokenizer *tok = load_ok(h5.s);
    int32_t ids[64];
    char err[512];
    const char *text = "ROMEO:\nWhat light?\n";
    long n = tokenizer_encode(tok, text, ids, 64, err, sizeof err);
    cr_assert_eq(n, (long)strlen(text), "%s", err);
    size_t len;
    char *back = decode_all(tok, ids, n, &len);
    cr_expect_str_eq(back, text);
    free(back);
    /* at most cap ids, the rest still checked */
    cr_expect_eq(tokenizer_encode(tok, text, ids, 5, err, sizeof err), 5);
    cr_expect_eq(tokenizer_encode(tok, "", ids, 64, err, sizeof err), 0);
    const char *b;
    cr_expect_eq(tokenizer_decode(tok, 65, &b), 0, "padding id decodes to nothing");
    cr_expect_eq(tokenizer_decode(tok, 1000, &b), 0);
    cr_expect_eq(tokenizer_decode(tok, -1, &b), 0);
    cr_expect_eq(b[0], '\0', "padding decodes to the empty string");
    tokenizer_free(tok);
}

Test(tokenizer, byte_encode) {
    pathbuf h5 = prepare_str("xyz", 3, "byte", 0.5, "b.h5");
    tokenizer *tok = load_ok(h5.s);
    int32_t ids[8];
    char err[512];
    cr_assert_eq(tokenizer_encode(tok, "A\xc3\xa9\xff", ids, 8, err, sizeof err), 4, "%s", err);
    cr_expect(ids[0] == 65 && ids[1] == 0xC3 && ids[2] == 0xA9 && ids[3] == 255);
    tokenizer_free(tok);
}

Test(tokenizer, load_errors) {
    char err[512] = "";
    pathbuf missing = path_join(tmp, "absent.h5");
    cr_expect_null(tokenizer_load(missing.s, err, sizeof err));
    cr_expect(strstr(err, "absent.h5: cannot open") != NULL, "%s", err);
    pathbuf text = path_join(tmp, "plain.txt");
    write_bytes(text.s, "not hdf5", 8);
    cr_expect_null(tokenizer_load(text.s, err, sizeof err));
    cr_expect(strstr(err, "plain.txt: cannot open as HDF5") != NULL, "%s", err);
    pathbuf h5 = path_join(tmp, "bare.h5");
    hid_t f = H5Fcreate(h5.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    cr_expect_null(tokenizer_load(h5.s, err, sizeof err));
    cr_expect(strstr(err, "bare.h5: attribute 'format' on /: missing") != NULL, "%s", err);
    expect_no_open_h5();
}

/* ---- token shards ------------------------------------------------------------------ */

Test(tshard, shards_partition_the_split) {
    pathbuf h5 = shakespeare_h5("char");
    const char *splits[] = {"train", "val"};
    for (int sp = 0; sp < 2; sp++) {
        long total;
        int32_t *all = read_split(h5.s, splits[sp], &total);
        for (int w = 1; w <= 3; w++) {
            long next = 0, min = total, max = 0;
            for (int r = 0; r < w; r++) {
                token_shard *s = open_ok(h5.s, splits[sp], r, w);
                long size = token_shard_size(s);
                cr_assert_eq(token_shard_total(s), total);
                cr_assert_eq(token_shard_begin(s), next, "W=%d rank %d: a gap or an overlap", w, r);
                int32_t *ids = malloc((size_t)size * sizeof *ids);
                char err[512];
                cr_assert_eq(token_shard_read(s, 0, size, ids, err, sizeof err), 0, "%s", err);
                cr_assert_eq(memcmp(ids, all + next, (size_t)size * sizeof *ids), 0, "W=%d rank %d: tokens differ", w,
                             r);
                next += size;
                min = size < min ? size : min;
                max = size > max ? size : max;
                free(ids);
                token_shard_close(s);
            }
            cr_expect_eq(next, total, "%s W=%d: the shards do not cover the split", splits[sp], w);
            cr_expect_leq(max - min, 1, "W=%d: unbalanced %ld..%ld", w, min, max);
        }
        free(all);
    }
    expect_no_open_h5();
}

Test(tshard, windows_match_the_full_read) {
    pathbuf h5 = shakespeare_h5("char");
    long total;
    int32_t *all = read_split(h5.s, "train", &total);
    token_shard *s = open_ok(h5.s, "train", 1, 3);
    long begin = token_shard_begin(s), size = token_shard_size(s);
    /* windows across chunk borders (65536) and at both ends of the range */
    long pos[] = {0, 65536 - begin % 65536 - 30, 1000, size - 65, 123457};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        int32_t w[65];
        char err[512];
        cr_assert_eq(token_shard_read(s, pos[i], 65, w, err, sizeof err), 0, "%s", err);
        cr_expect_eq(memcmp(w, all + begin + pos[i], sizeof w), 0, "window at %ld", pos[i]);
    }
    token_shard_close(s);
    free(all);
}

Test(tshard, reads_outside_the_range_fail) {
    pathbuf h5 = prepare_str("abcdefghijklmnopqrst", 20, "char", 0.5, "small.h5");
    token_shard *s = open_ok(h5.s, "train", 1, 2); /* tokens 5..9 of 10 */
    cr_assert_eq(token_shard_size(s), 5);
    cr_assert_eq(token_shard_begin(s), 5);
    int32_t ids[16] = {0};
    char err[512] = "";
    cr_expect_eq(token_shard_read(s, 0, 5, ids, err, sizeof err), 0, "%s", err);
    cr_expect(ids[0] == 5 && ids[4] == 9);
    cr_expect_eq(token_shard_read(s, 5, 0, ids, err, sizeof err), 0, "an empty read at the end is fine");
    cr_expect_eq(token_shard_read(s, 1, 5, ids, err, sizeof err), -1, "outside the range is not bad data");
    cr_expect(strstr(err, "small.h5") && strstr(err, "/train/tokens") && strstr(err, "outside rank 1"), "%s", err);
    cr_expect_neq(token_shard_read(s, -1, 2, ids, err, sizeof err), 0);
    cr_expect_neq(token_shard_read(s, 0, -1, ids, err, sizeof err), 0);
    cr_expect_neq(token_shard_read(s, 6, 1, ids, err, sizeof err), 0);
    token_shard_close(s);
}

/* A hand-made file: /train/tokens of the given type and shape, and vocab_size unless < 0. */
static pathbuf custom_h5(hid_t type, int rank, const hsize_t *dims, const void *data, long vocab) {
    pathbuf p = path_join(tmp, "custom.h5");
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(g, "tokens", type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    if (data) cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    if (vocab >= 0) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, "vocab_size", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        int64_t v = vocab;
        H5Awrite(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
        H5Sclose(as);
    }
    H5Dclose(d);
    H5Sclose(sp);
    H5Gclose(g);
    H5Fclose(f);
    return p;
}

static void expect_open_fails(const char *path, const char *split, int rank, int world, const char *want) {
    char err[512] = "";
    token_shard *s = token_shard_open(path, split, rank, world, err, sizeof err);
    cr_expect_null(s, "opened, expected: %s", want);
    if (s) token_shard_close(s);
    cr_expect(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    cr_expect_null(strchr(err, '\n'), "not one line: %s", err);
    expect_no_open_h5();
}

Test(tshard, float_tokens_are_refused) {
    float x[4] = {0, 1, 2, 3};
    hsize_t dims[1] = {4};
    pathbuf p = custom_h5(H5T_NATIVE_FLOAT, 1, dims, x, 4);
    expect_open_fails(p.s, "train", 0, 1, "custom.h5: /train/tokens: expected uint16 or uint32 token ids, got float32");
}

Test(tshard, validation_errors) {
    uint16_t x[6] = {0, 1, 2, 3, 4, 5};
    hsize_t d2[2] = {2, 3}, d1[1] = {6};
    pathbuf p = custom_h5(H5T_NATIVE_UINT16, 2, d2, x, 6);
    expect_open_fails(p.s, "train", 0, 1, "/train/tokens: expected a 1-D array");
    p = custom_h5(H5T_NATIVE_INT32, 1, d1, NULL, 6);
    expect_open_fails(p.s, "train", 0, 1, "got int32");
    p = custom_h5(H5T_NATIVE_UINT8, 1, d1, NULL, 6);
    expect_open_fails(p.s, "train", 0, 1, "got uint8");
    p = custom_h5(H5T_NATIVE_UINT16, 1, d1, x, -1);
    expect_open_fails(p.s, "train", 0, 1, "custom.h5: attribute 'vocab_size' on /: missing");
    expect_open_fails(p.s, "val", 0, 1, "custom.h5: /val/tokens: not found");
    expect_open_fails(p.s, "train", 2, 2, "rank 2 of world 2");
    expect_open_fails(p.s, "a/b", 0, 1, "split 'a/b'");
    pathbuf missing = path_join(tmp, "nothing_here.h5");
    expect_open_fails(missing.s, "train", 0, 1, "nothing_here.h5: cannot open");
}

Test(tshard, corrupt_ids_fail_the_read) {
    uint16_t x[6] = {0, 1, 2, 70, 4, 5};
    hsize_t d1[1] = {6};
    pathbuf p = custom_h5(H5T_NATIVE_UINT16, 1, d1, x, 65);
    token_shard *s = open_ok(p.s, "train", 0, 1);
    int32_t ids[6];
    char err[512] = "";
    cr_expect_eq(token_shard_read(s, 0, 3, ids, err, sizeof err), 0, "%s", err);
    cr_expect_neq(token_shard_read(s, 2, 3, ids, err, sizeof err), 0);
    cr_expect(strstr(err, "token 3 is id 70") != NULL, "%s", err);
    token_shard_close(s);
    expect_no_open_h5();
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Measured, not asserted (machines differ): one GPT step's worth of reads, 12 random
 * windows of 65 tokens (block 64 + 1 target) from a rank's range. */
Test(tshard, window_read_timing) {
    pathbuf h5 = shakespeare_h5("char");
    token_shard *s = open_ok(h5.s, "train", 0, 2);
    long size = token_shard_size(s);
    uint64_t x = 12345;
    int32_t w[65];
    char err[512];
    double first = 0, t0 = now_s();
    enum { STEPS = 2000 };
    for (int step = 0; step < STEPS; step++) {
        for (int b = 0; b < 12; b++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            long pos = (long)((x >> 33) % (uint64_t)(size - 65));
            cr_assert_eq(token_shard_read(s, pos, 65, w, err, sizeof err), 0, "%s", err);
        }
        if (step == 0) first = now_s() - t0;
    }
    double per_step = (now_s() - t0 - first) / (STEPS - 1);
    fprintf(stderr, "token_shard timing: 12 random 65-token windows per step: first step %.1f us (cold cache), "
            "then %.1f us per step (%.2f us per window)\n", first * 1e6, per_step * 1e6, per_step * 1e6 / 12);
    cr_log_info("12 x 65-token windows: %.1f us per step", per_step * 1e6);
    token_shard_close(s);
}

/* ---- BPE and token directories ------------------------------------------------------ */

TestSuite(tdir, .init = setup, .fini = teardown);

/* The shipped corpus into tmp/bpe (a 600-token vocabulary), then into NAME (a .h5 file or,
 * with shard_tokens, a directory). */
static pathbuf prepare_bpe_data(const char *name, long shard_tokens) {
    pathbuf txt = shakespeare_txt(), bpe_dir = path_join(tmp, "bpe"), out = path_join(tmp, name);
    const char *in[1] = {txt.s};
    char err[512];
    if (!exists(bpe_dir.s))
        cr_assert_eq(prepare_bpe(in, 1, 600, 100000, bpe_dir.s, err, sizeof err), 0, "%s", err);
    text_job tj = {in, 1, out.s, "bpe", bpe_dir.s, 0.1, shard_tokens};
    cr_assert_eq(prepare_text_job(&tj, err, sizeof err), 0, "%s", err);
    return out;
}

static int32_t *read_all_of(token_shard *s) {
    char err[512];
    long n = token_shard_size(s);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    cr_assert_not_null(ids);
    cr_assert_eq(token_shard_read(s, 0, n, ids, err, sizeof err), 0, "%s", err);
    return ids;
}

Test(tdir, directory_reads_like_the_file) {
    pathbuf file = prepare_bpe_data("bpe.h5", 0), dir = prepare_bpe_data("bpedir", 20000);
    char err[512];
    for (int split = 0; split < 2; split++) {
        const char *name = split ? "val" : "train";
        token_shard *f = token_shard_open(file.s, name, 0, 1, err, sizeof err);
        cr_assert_not_null(f, "%s", err);
        int32_t *want = read_all_of(f);
        long total = token_shard_size(f);
        for (int world = 1; world <= 5; world += 2) {
            long covered = 0;
            for (int r = 0; r < world; r++) {
                token_shard *d = token_shard_open(dir.s, name, r, world, err, sizeof err);
                cr_assert_not_null(d, "%s", err);
                cr_assert_eq(token_shard_total(d), total);
                cr_assert_eq(token_shard_begin(d), covered, "ranks must tile the split");
                cr_assert_eq(token_shard_vocab_size(d), 600);
                /* only the shards that the rank's range overlaps are opened */
                long n = token_shard_size(d);
                cr_expect_leq(token_shard_file_count(d), n / 20000 + 2, "rank %d/%d opened %d files", r, world,
                              token_shard_file_count(d));
                int32_t *got = read_all_of(d);
                cr_expect_eq(memcmp(got, want + covered, (size_t)n * sizeof *got), 0, "%s rank %d/%d", name, r, world);
                /* short windows across shard borders */
                int32_t w[64];
                for (long pos = 0; pos + 64 <= n; pos += 19997) {
                    cr_assert_eq(token_shard_read(d, pos, 64, w, err, sizeof err), 0, "%s", err);
                    cr_expect_eq(memcmp(w, want + covered + pos, sizeof w), 0, "window at %ld", pos);
                }
                free(got);
                covered += n;
                token_shard_close(d);
            }
            cr_expect_eq(covered, total);
        }
        free(want);
        token_shard_close(f);
    }
}

Test(tdir, directory_tokenizer_round_trips) {
    pathbuf dir = prepare_bpe_data("bpedir", 50000);
    char err[512];
    tokenizer *t = tokenizer_load(dir.s, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    cr_expect_eq(tokenizer_vocab_size(t), 600);
    const char *text = "ROMEO: Wherefore art thou, caf\xc3\xa9 \xf0\x9f\x99\x82?\n  ";
    int32_t ids[256];
    long n = tokenizer_encode(t, text, ids, 256, err, sizeof err);
    cr_assert(n > 0 && n < (long)strlen(text), "%ld ids: %s", n, err);
    size_t len;
    char *back = decode_all_any(t, ids, n, &len);
    cr_expect_str_eq(back, text);
    free(back);
    tokenizer_free(t);
}

Test(tdir, char_tokenizer_needs_a_file) {
    pathbuf txt = shakespeare_txt(), out = path_join(tmp, "chardir");
    const char *in[1] = {txt.s};
    char err[512];
    text_job tj = {in, 1, out.s, "char", NULL, 0.1, 1000};
    cr_expect_eq(prepare_text_job(&tj, err, sizeof err), PREPARE_BAD_INPUT);
    cr_expect(strstr(err, "writes one .h5 file") != NULL, "%s", err);
    cr_expect_eq(entries(tmp), 0, "left output behind");
}

/* Pre-tokenizing at a cut from pretok_safe_cut gives the pieces of the whole text: the
 * property the streamed encoder (text_stream.c) relies on. */
Test(tdir, safe_cuts_keep_the_pieces) {
    static const char *const parts[] = {" ", "  ", "\n", "\n\n", "\t", "word", "Word", "'s", "'ll", "42", "!!", "...",
                                        "caf\xc3\xa9", "\xe3\x80\x80", "\xc2\xa0", " x", "\r\n", "-", "7.5"};
    char text[4096];
    size_t len = 0;
    unsigned seed = 7;
    while (len < sizeof text - 16) {
        seed = seed * 1103515245u + 12345u;
        const char *p = parts[(seed >> 16) % (sizeof parts / sizeof parts[0])];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    const unsigned char *s = (const unsigned char *)text;
    /* the piece ends of the whole text */
    static char is_end[4096];
    for (size_t i = 0; i < len;) is_end[i = pretok_next(s, len, i)] = 1;
    int cuts = 0;
    for (size_t end = 64; end <= len; end += 37) {
        size_t c = pretok_safe_cut(s, end);
        if (c == 0) continue;
        cuts++;
        cr_assert(is_end[c], "cut %zu is not a piece boundary of the whole text", c);
        /* the left part alone ends its pieces where the whole text does */
        for (size_t i = 0; i < c;) {
            size_t j = pretok_next(s, c, i);
            cr_assert(j == c || is_end[j], "piece [%zu, %zu) of the left part is not one of the whole", i, j);
            i = j;
        }
    }
    cr_expect_gt(cuts, 50);
}
