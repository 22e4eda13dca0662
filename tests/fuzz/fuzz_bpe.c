/* fuzz_bpe: the byte-level BPE tables (datasets/bpe.c: vocab.json through jansson, merges.txt
 * by hand) and the encoder over them. The input is vocab.json, NUL, merges.txt, NUL, text.
 * Whatever tables it accepts, every id the encoder gives must be below the vocabulary size
 * and have bytes, and encoding the same text again (now from the encoder's cache) must give
 * the same ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "fuzz_util.h"

static const uint8_t *part(const uint8_t **p, size_t *n, size_t *len) {
    const uint8_t *start = *p, *nul = memchr(*p, 0, *n);
    *len = nul ? (size_t)(nul - start) : *n;
    *p += *len + (nul != NULL);
    *n -= *len + (nul != NULL);
    return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t vlen, mlen, tlen;
    const uint8_t *vocab = part(&data, &size, &vlen), *merges = part(&data, &size, &mlen);
    const uint8_t *text = part(&data, &size, &tlen);
    char err[1024];
    bpe *b = bpe_parse((const char *)vocab, vlen, (const char *)merges, mlen, "vocab.json", "merges.txt", err,
                       sizeof err);
    if (!b) return 0;
    int vocab_size = bpe_vocab_size(b);
    if (vocab_size < 1 || vocab_size > BPE_MAX_VOCAB || bpe_merge_count(b) < 0) abort();
    idvec first = {0}, again = {0};
    if (bpe_encode(b, (const char *)text, tlen, &first) != 0 || bpe_encode(b, (const char *)text, tlen, &again) != 0)
        abort();
    if (first.n != again.n || (first.n && memcmp(first.v, again.v, first.n * sizeof *first.v) != 0)) {
        fprintf(stderr, "fuzz_bpe: the same text encoded twice gave different ids\n");
        abort();
    }
    for (size_t i = 0; i < first.n; i++) {
        int len;
        if (first.v[i] < 0 || first.v[i] >= vocab_size || !bpe_token_bytes(b, first.v[i], &len) || len < 1) {
            fprintf(stderr, "fuzz_bpe: id %d of the encoding is not a token\n", first.v[i]);
            abort();
        }
    }
    int none;
    if (bpe_token_bytes(b, -1, &none) || bpe_token_bytes(b, vocab_size, &none)) abort();
    idvec_free(&first);
    idvec_free(&again);
    bpe_free(b);
    return 0;
}
