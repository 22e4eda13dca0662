/* token_meta.h: what token files and token directories record besides the ids (private to
 * datasets/; the layouts are described in tokens.h). */
#ifndef DTRAIN_TOKEN_META_H
#define DTRAIN_TOKEN_META_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "bpe.h"

#define TOKENS_FORMAT "dtrain-tokens-v1"            /* one file: /train/tokens, /val/tokens */
#define TOKEN_INDEX_FORMAT "dtrain-token-index-v1"  /* DIR/index.h5 of a token directory */
#define TOKEN_SHARD_FORMAT "dtrain-token-shard-v1"  /* DIR/shard-NNNNN.h5 */
#define TOKEN_INDEX_NAME "index.h5"
#define U16_VOCAB_MAX 65536
#define TOKEN_SHARD_DEFAULT (1L << 24) /* ids per shard file unless told */

/* The tokenizer as recorded: kind "char" (chars), "byte", or "bpe" (the vocab.json and
 * merges.txt bytes, stored as /tokenizer/vocab.json and /tokenizer/merges.txt, uint8). */
typedef struct {
    const char *kind;
    long vocab;
    const char *chars;
    const char *vocab_json, *merges;
    size_t vocab_len, merges_len;
} token_meta;

/* format, tokenizer, vocab_size, source, chars on "/", and the /tokenizer blobs for bpe.
 * 0, or -1 with HDF5's error stack set. */
int token_meta_write(hid_t file, const char *format, const char *source, const token_meta *m);

/* The BPE tokenizer stored in file (path for messages); NULL and a line in err. */
bpe *token_meta_read_bpe(hid_t file, const char *path, char *err, size_t errlen);

/* 1 if path is a directory (a token directory, to be read through its index). */
int token_path_is_dir(const char *path);
/* DIR/index.h5 or DIR/shard-NNNNN.h5 (i >= 0), malloc'd; NULL when out of memory. */
char *token_dir_file(const char *dir, int shard);

/* A token directory's index, for one split. */
typedef struct {
    int nshards;
    int64_t *sizes;     /* [nshards] tokens per shard */
    int64_t first, count; /* the split: global tokens [first, first + count) of the shards in order */
    int vocab;
} token_index;

/* Reads and checks DIR/index.h5 (format, vocab_size, shard sizes, the split's range within
 * their total); errors name the index file. */
int token_index_read(const char *dir, const char *split, token_index *ix, char *err, size_t errlen);
void token_index_free(token_index *ix);

/* prepare_stream.c: a token directory from tj's inputs, encoded by b (NULL: bytes). */
#include "tokens.h"
int prepare_text_dir(const text_job *tj, bpe *b, const token_meta *m, char *err, size_t errlen);

#endif
