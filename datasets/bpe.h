/* bpe.h: byte-level BPE (GPT-2's scheme) read from and written to the vocab.json +
 * merges.txt pair that GPT-2 and Hugging Face `tokenizers` use.
 *
 * Bytes are first mapped to printable characters (GPT-2's bytes_to_unicode: the printable
 * Latin-1 bytes stand for themselves, the other 68 for U+0100 upwards), so that every token
 * is a printable string in vocab.json. Text is split by GPT-2's pre-tokenizer (pretok.h),
 * and each piece is encoded by applying merges lowest rank first (ties: leftmost), as the
 * `tokenizers` package does. Invalid UTF-8 in the text is read as U+FFFD, one per maximal
 * subpart (what Python's bytes.decode("utf-8", errors="replace") hands that package). */
#ifndef DTRAIN_BPE_H
#define DTRAIN_BPE_H

#include <stddef.h>
#include <stdint.h>

/* The largest vocabulary dtrain takes: ids must fit the gpt job's vocab_size key and the
 * uint32 token files with room to spare. */
#define BPE_MAX_VOCAB (1 << 24)

typedef struct bpe bpe;

/* A growing array of token ids. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} idvec;
int idvec_push(idvec *a, int32_t id); /* 0, or -1 when out of memory */
void idvec_free(idvec *a);

/* Loads DIR/vocab.json and DIR/merges.txt. NULL and one line in err naming the file and
 * what is wrong: not JSON (with line and column), not an object of token → id, an id that
 * is negative, repeated or not below BPE_MAX_VOCAB, a merges line that is not two tokens, or
 * a merge whose tokens (or their concatenation) are not in the vocabulary. */
bpe *bpe_load_dir(const char *dir, char *err, size_t errlen);
/* The same from the two files' contents; vocab_name and merges_name are for messages. */
bpe *bpe_parse(const char *vocab_json, size_t vocab_len, const char *merges_txt, size_t merges_len,
               const char *vocab_name, const char *merges_name, char *err, size_t errlen);
void bpe_free(bpe *b);

int bpe_vocab_size(const bpe *b); /* the largest id + 1 */
long bpe_merge_count(const bpe *b);

/* Appends the ids of text[0, len) to out. Not thread-safe: b keeps a cache of encoded
 * pieces (bounded; cleared when full). Returns 0, or -1 when out of memory. */
int bpe_encode(bpe *b, const char *text, size_t len, idvec *out);

/* The bytes of token id (NULL and *len = 0 for an id outside the vocabulary). */
const char *bpe_token_bytes(const bpe *b, int32_t id, int *len);

/* GPT-2's byte → character map, and its inverse (-1 for a code point that stands for no
 * byte). */
uint32_t bpe_byte_char(unsigned char byte);
int bpe_char_byte(uint32_t cp);

#endif
