/* tokens.h: text → token HDF5 files, the tokenizers, and per-rank token shards.
 *
 * File layout written by `dtrain prepare text`:
 *   /train/tokens, /val/tokens   1-D uint16 (uint32 when the vocabulary exceeds 65,536),
 *                                chunked
 *   attributes on "/": format = "dtrain-tokens-v1", tokenizer = "char" | "byte",
 *   vocab_size (int64), source (string, the input path), and for "char": chars (string,
 *   UTF-8: the characters of ids 0, 1, 2, ... concatenated, in id order).
 *   /train and /val groups carry count (int64).
 *
 * Tokenizers: "char" gives each distinct Unicode code point of the input (UTF-8) an id, in
 * code-point order; "byte" maps bytes to ids 0..255 (vocab_size 256). "char" accepts only
 * strict UTF-8 (no overlong forms, surrogates or stray bytes) and no U+0000, which the
 * chars string could not hold; "byte" accepts any bytes. */
#ifndef DTRAIN_TOKENS_H
#define DTRAIN_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "prepare.h"

/* Writes OUT from the text file IN: the first (1 - val_fraction) of the tokens to
 * /train/tokens, the rest to /val/tokens. The split is train = floor(N * (1 - val_fraction))
 * tokens, where a product within a relative 1e-9 of an integer counts as that integer (so
 * binary rounding of the fraction cannot move a token); both splits must be non-empty.
 * Temporary name (OUT.tmp.PID) + fsync + rename: no partial output on failure, and an
 * existing OUT is replaced only by a complete file. Returns PREPARE_OK; PREPARE_BAD_INPUT
 * and one line in err naming the file and what is wrong (unreadable or empty input, invalid
 * UTF-8 with the byte offset for "char", val_fraction outside (0, 1), an empty split, IN =
 * OUT, ...); or PREPARE_FAILED when the output cannot be written. */
int prepare_text(const char *in_path, const char *out_path, const char *tokenizer,
                 double val_fraction, char *err, size_t errlen);

typedef struct tokenizer tokenizer;

/* Loads the tokenizer recorded in a token file's attributes (format, tokenizer,
 * vocab_size, chars); the source text is not needed. NULL and a line in err if the file
 * is not a dtrain-tokens-v1 file or its attributes disagree with each other. */
tokenizer *tokenizer_load(const char *h5_path, char *err, size_t errlen);
int tokenizer_vocab_size(const tokenizer *t);
/* Encodes NUL-terminated text (UTF-8 for "char"); returns the number of ids written to out
 * (at most cap: a longer text is truncated, though still checked to its end), or -1 with
 * err naming the first character not in the vocabulary (or invalid UTF-8) and its byte
 * offset. */
long tokenizer_encode(const tokenizer *t, const char *text, int32_t *out, long cap, char *err,
                      size_t errlen);
/* Appends the bytes of token `id` to buf (at most 4 bytes, no NUL); returns their count,
 * 0 for an id outside the vocabulary (e.g. padding ids of a padded embedding). */
int tokenizer_decode(const tokenizer *t, int32_t id, char *buf);
void tokenizer_free(tokenizer *t);

typedef struct token_shard token_shard;

/* Opens FILE's /SPLIT/tokens read-only for rank r of W: the rank owns the contiguous range
 * [floor(rN/W), floor((r+1)N/W)) (shard_begin of image_shard.h) and selects nothing else.
 * Reads go through HDF5 hyperslabs, never the whole dataset; the file stays open, with a
 * chunk cache sized to the range (at most 64 MiB). Checks that the dataset exists, is 1-D
 * uint16 or uint32, and that "/" has vocab_size; errors name the file and the dataset. */
token_shard *token_shard_open(const char *path, const char *split, int rank, int world,
                              char *err, size_t errlen);
long token_shard_size(const token_shard *s);  /* tokens in this rank's range */
long token_shard_begin(const token_shard *s); /* global offset of its first token */
long token_shard_total(const token_shard *s); /* tokens in the whole split */
int token_shard_vocab_size(const token_shard *s);
/* Copies tokens [pos, pos + n) of the rank's range (pos relative to its begin) into out.
 * Returns 0; TOKEN_READ_BAD_DATA and a line in err when the file's data is wrong (a chunk
 * fails its checksum, or an id >= vocab_size, which would index past the embedding); or -1
 * and a line in err for any other failure (the window leaves the range, an I/O error). Not
 * thread-safe per shard. */
#define TOKEN_READ_BAD_DATA (-2)
int token_shard_read(token_shard *s, long pos, long n, int32_t *out, char *err, size_t errlen);
void token_shard_close(token_shard *s);

#endif
