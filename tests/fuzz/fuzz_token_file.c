/* fuzz_token_file: the token readers (datasets/token_shard.c, token_meta.c) and the recorded
 * tokenizer (datasets/tokenizer.c: the char table, byte, the stored BPE files) on HDF5 files
 * built from the input (fuzz_util.h: the empty input builds a good file): one token file
 * (/train/tokens, /val/tokens and the root's attributes) or a token directory (index.h5 with
 * /shard_sizes and each split's first and count, and shard-NNNNN.h5 files), with any
 * tokenizer kind. Then it loads the tokenizer, encodes and decodes with it, and reads each
 * split for a rank as the gpt job does. Every id a read returns without an error must be
 * below the vocabulary size (it indexes the embedding), and the ranges must add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tokens.h"

static const char *const KINDS[] = {"char", "byte", "bpe"};
static const char BPE_VOCAB[] = "{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120a\":4,\"<|endoftext|>\":5}";
static const char BPE_MERGES[] = "#version: 0.2\na b\n\xc4\xa0 a\n";
static const int64_t VOCAB[] = {10, 256, 6};
#define NSHARDS 3
static const int64_t SHARD_SIZES[NSHARDS] = {40, 40, 30};

/* the root's attributes and the BPE blobs, as token_meta_write writes them */
static void put_meta(fz_in *in, hid_t f, const char *format, int kind) {
    fz_attr(in, f, "format", FZ_VSTR, 0, 0, format);
    fz_attr(in, f, "tokenizer", FZ_VSTR, 0, 0, KINDS[kind]);
    fz_attr(in, f, "vocab_size", FZ_I64, VOCAB[kind], 0, NULL);
    fz_attr(in, f, "source", FZ_VSTR, 0, 0, "input.txt");
    if (kind == 0 || fz_u8(in)) fz_attr(in, f, "chars", FZ_VSTR, 0, 0, "abcdefghij");
    if (kind == 2 || fz_u8(in)) {
        fz_dset v = {H5T_NATIVE_UINT8, 1, {sizeof BPE_VOCAB - 1}, BPE_VOCAB, 0, 0};
        fz_dataset(in, f, "/tokenizer/vocab.json", &v);
        fz_dset m = {H5T_NATIVE_UINT8, 1, {sizeof BPE_MERGES - 1}, BPE_MERGES, 0, 0};
        fz_dataset(in, f, "/tokenizer/merges.txt", &m);
    }
}

static void put_tokens(fz_in *in, hid_t f, const char *dpath, int64_t n, int64_t vocab) {
    uint16_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (uint16_t)(i * 3 % vocab);
    fz_dset d = {H5T_NATIVE_UINT16, 1, {(hsize_t)n}, ids, 1, 16};
    fz_dataset(in, f, dpath, &d);
    free(ids);
}

static void build_file(fz_in *in, const char *path, int kind) {
    hid_t f = fz_h5_create(path);
    put_meta(in, f, "dtrain-tokens-v1", kind);
    put_tokens(in, f, "/train/tokens", 100, VOCAB[kind]);
    put_tokens(in, f, "/val/tokens", 20, VOCAB[kind]);
    hid_t g = H5Gopen2(f, "/train", H5P_DEFAULT);
    if (g >= 0) fz_attr(in, g, "count", FZ_I64, 100, 0, NULL), H5Gclose(g);
    g = H5Gopen2(f, "/val", H5P_DEFAULT);
    if (g >= 0) fz_attr(in, g, "count", FZ_I64, 20, 0, NULL), H5Gclose(g);
    H5Fclose(f);
}

static void put_split(fz_in *in, hid_t f, const char *name, int64_t first, int64_t count) {
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return;
    fz_attr(in, g, "first", FZ_I64, first, 0, NULL);
    fz_attr(in, g, "count", FZ_I64, count, 0, NULL);
    H5Gclose(g);
}

static void build_dir(fz_in *in, const char *dir, int kind) {
    char path[1100];
    for (int i = 0; i < NSHARDS + 2; i++) { /* the last input's files */
        snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, i);
        unlink(path);
    }
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/index.h5", dir);
    hid_t f = fz_h5_create(path);
    put_meta(in, f, "dtrain-token-index-v1", kind);
    fz_attr(in, f, "shard_tokens", FZ_I64, 40, 0, NULL);
    fz_dset sizes = {H5T_NATIVE_INT64, 1, {NSHARDS}, SHARD_SIZES, 0, 0};
    fz_dataset(in, f, "/shard_sizes", &sizes);
    put_split(in, f, "train", 0, 90);
    put_split(in, f, "val", 90, 20);
    H5Fclose(f);
    int64_t first = 0;
    for (int i = 0; i < NSHARDS; i++) {
        if (fz_u8(in) == 1) continue; /* a shard file missing */
        snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, i);
        f = fz_h5_create(path);
        fz_attr(in, f, "format", FZ_VSTR, 0, 0, "dtrain-token-shard-v1");
        fz_attr(in, f, "shard", FZ_I64, i, 0, NULL);
        fz_attr(in, f, "first", FZ_I64, first, 0, NULL);
        put_tokens(in, f, "/tokens", SHARD_SIZES[i], VOCAB[kind]);
        H5Fclose(f);
        first += SHARD_SIZES[i];
    }
}

static void use_tokenizer(const char *path, fz_in *in) {
    char err[1024];
    tokenizer *t = tokenizer_load(path, err, sizeof err);
    fz_note("tokenizer_load", t ? "ok" : err);
    if (!t) return;
    int vocab = tokenizer_vocab_size(t);
    FZ_CHECK(vocab >= 1);
    for (int32_t id = -1; id <= vocab && id < 70000; id++) {
        const char *bytes;
        int n = tokenizer_decode(t, id, &bytes);
        FZ_CHECK(n >= 0);
        if (n > 0) FZ_CHECK(bytes != NULL && bytes[0] == bytes[0] && bytes[n - 1] == bytes[n - 1]);
        if (id < 0 || id >= vocab) FZ_CHECK(n == 0);
    }
    size_t len;
    const uint8_t *p = fz_bytes(in, 256, &len);
    char *text = malloc(len + 1);
    memcpy(text, p, len);
    text[len] = '\0';
    int32_t out[64];
    long n = tokenizer_encode(t, text, out, 64, err, sizeof err);
    FZ_CHECK(n >= -1 && n <= 64);
    for (long i = 0; i < n; i++) FZ_CHECK(out[i] >= 0 && out[i] < vocab);
    free(text);
    tokenizer_free(t);
}

static void read_split(const char *path, const char *split, int rank, int world) {
    char err[1024];
    token_shard *s = token_shard_open(path, split, rank, world, err, sizeof err);
    fz_note("token_shard_open", s ? "ok" : err);
    if (!s) return;
    long size = token_shard_size(s), begin = token_shard_begin(s), total = token_shard_total(s);
    int vocab = token_shard_vocab_size(s);
    FZ_CHECK(vocab >= 1 && size >= 0 && begin >= 0 && total >= 0 && begin <= total && size <= total - begin);
    enum { WINDOW = 33 };
    int32_t ids[WINDOW];
    for (long pos = 0; pos < size; pos += WINDOW) {
        long n = size - pos < WINDOW ? size - pos : WINDOW;
        if (token_shard_read(s, pos, n, ids, err, sizeof err) != 0) {
            fz_note("token_shard_read", err);
            break;
        }
        for (long i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
    }
    token_shard_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) fz_h5_init(), init = 1;
    fz_in in = {data, size};
    int dir = (int)fz_pick(&in, 2), kind = (int)fz_pick(&in, 3);
    int world = 1 + (int)fz_pick(&in, 4), rank = (int)fz_pick(&in, (unsigned)world);
    char path[1024];
    snprintf(path, sizeof path, "%s", fz_path(dir ? "tokens" : "tokens.h5"));
    if (dir) build_dir(&in, path, kind);
    else build_file(&in, path, kind);
    use_tokenizer(path, &in);
    read_split(path, "train", rank, world);
    read_split(path, "val", rank, world);
    return 0;
}
