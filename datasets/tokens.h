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

/* `dtrain prepare bpe`: learns a byte-level BPE vocabulary of vocab_size tokens (257 ..
 * BPE_MAX_VOCAB: the 256 bytes, the merges, and <|endoftext|> as the last id) from the
 * inputs (files, directories, "-" for standard input; streamed, text_stream.h) and writes
 * OUT_DIR/vocab.json and OUT_DIR/merges.txt (bpe.h). Memory: the distinct pre-tokenizer
 * pieces counted are capped at max_words (when full, the rarest are dropped), plus the
 * merge tables of those pieces. Returns PREPARE_OK, PREPARE_BAD_INPUT (an empty or binary
 * input, a bad vocab_size) or PREPARE_FAILED, with one line in err. */
int prepare_bpe(const char *const *in, int nin, long vocab_size, long max_words, const char *out_dir, char *err,
                size_t errlen);

/* `dtrain prepare text` in full. The output is one HDF5 file (the layout above) when there
 * is one input file and shard_tokens is 0: tokenized in memory. Otherwise (shard_tokens >
 * 0, several inputs, a directory or "-") out is a token directory,
 * written by streaming the inputs (files, directories, "-" for standard input; see
 * text_stream.h) in bounded memory (about 64 MiB plus the vocabulary; prepare_stream.c):
 *   OUT/shard-00000.h5, ...  /tokens: 1-D uint16 (uint32 above 65,536 ids), chunked with
 *                            Fletcher32, shard_tokens ids each (the last may hold fewer);
 *                            attributes format = "dtrain-token-shard-v1", shard, first
 *   OUT/index.h5             attributes format = "dtrain-token-index-v1", tokenizer,
 *                            vocab_size, source, shard_tokens (and chars for "char");
 *                            /shard_sizes int64[shards]; /train and /val groups with
 *                            attributes first and count: each split is a range of the
 *                            shards' ids concatenated in order (train first, as in a file)
 * The directory is built as OUT.tmp.PID and renamed into place when complete. Tokenizers:
 * "char" and "byte" as above, and "bpe" (a byte-level BPE from bpe_dir/vocab.json and
 * bpe_dir/merges.txt, stored in the output as /tokenizer/vocab.json and
 * /tokenizer/merges.txt); a directory takes "byte" or "bpe" (char ids depend on the whole
 * text). Returns as prepare_text. */
typedef struct {
    const char *const *in;
    int nin;
    const char *out;
    const char *tokenizer; /* "char", "byte" or "bpe" */
    const char *bpe_dir;   /* for "bpe" */
    double val_fraction;
    long shard_tokens;     /* ids per shard file of a token directory; 0: one file if the
                              input allows it, else shards of 16,777,216 ids */
} text_job;
int prepare_text_job(const text_job *tj, char *err, size_t errlen);

typedef struct tokenizer tokenizer;

/* Loads the tokenizer recorded in a token file (or a token directory's index): format,
 * tokenizer, vocab_size, chars, the BPE files; the source text is not needed. NULL and a
 * line in err if it is not a dtrain-tokens-v1 file (dtrain-token-index-v1 index) or what it
 * records disagrees with itself. */
tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
int tokenizer_vocab_size(const tokenizer *t);
/* Encodes NUL-terminated text (UTF-8 for "char"; "bpe" reads invalid UTF-8 as U+FFFD, see
 * bpe.h); returns the number of ids written to out (at most cap: a longer text is
 * truncated, though still checked to its end), or -1 with err naming the first character
 * not in the vocabulary (or invalid UTF-8) and its byte offset. */
long tokenizer_encode(const tokenizer *t, const char *text, int32_t *out, long cap, char *err,
                      size_t errlen);
/* Points *bytes at the bytes of token `id` (not NUL-terminated; owned by t) and returns
 * their count: 0 for an id outside the vocabulary (e.g. padding ids of a padded embedding).
 * A BPE token may hold part of a UTF-8 character: concatenating the tokens' bytes gives
 * the text back. */
int tokenizer_decode(const tokenizer *t, int32_t id, const char **bytes);
void tokenizer_free(tokenizer *t);

typedef struct token_shard token_shard;

/* Opens FILE's /SPLIT/tokens read-only for rank r of W, or a token directory's SPLIT: the
 * rank owns the contiguous range [floor(rN/W), floor((r+1)N/W)) of the split's N ids
 * (shard_begin of image_shard.h) and selects nothing else; in a directory it opens only the
 * shard files that range overlaps. Reads go through HDF5 hyperslabs, never a whole
 * dataset; the files stay open, with chunk caches sized to the range (at most 64 MiB in
 * all). Checks that each dataset exists, is 1-D uint16 or uint32 (of the length the index
 * gives), and that the vocabulary size is recorded; errors name the file and the dataset. */
token_shard *token_shard_open(const char *path, const char *split, int rank, int world,
                              char *err, size_t errlen);
long token_shard_size(const token_shard *s);  /* tokens in this rank's range */
long token_shard_begin(const token_shard *s); /* global offset of its first token */
long token_shard_total(const token_shard *s); /* tokens in the whole split */
int token_shard_vocab_size(const token_shard *s);
int token_shard_file_count(const token_shard *s); /* files this rank opened (its pieces) */
/* Copies tokens [pos, pos + n) of the rank's range (pos relative to its begin) into out.
 * Returns 0; TOKEN_READ_BAD_DATA and a line in err when the file's data is wrong (a chunk
 * fails its checksum, or an id >= vocab_size, which would index past the embedding); or -1
 * and a line in err for any other failure (the window leaves the range, an I/O error). Not
 * thread-safe per shard. */
#define TOKEN_READ_BAD_DATA (-2)
int token_shard_read(token_shard *s, long pos, long n, int32_t *out, char *err, size_t errlen);
void token_shard_close(token_shard *s);

#endif
