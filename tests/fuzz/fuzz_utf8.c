/* fuzz_utf8: the UTF-8 codec (datasets/utf8.c) and GPT-2's pre-tokenizer (datasets/pretok.c)
 * on any bytes, checked against what their headers promise: a strict decode is 1-4 bytes
 * of a scalar value that encodes back to the same bytes; the lossy decode agrees with it on
 * valid input and always moves on; the pre-tokenizer's pieces tile the text; and cutting at
 * pretok_safe_cut gives the same pieces as the whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "pretok.h"
#include "utf8.h"

/* the piece ends of s[0, len), into ends (room for len); returns how many */
static size_t pieces(const unsigned char *s, size_t len, size_t *ends) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = pretok_next(s, len, i);
        FZ_CHECK(j > i && j <= len);
        ends[n++] = j;
        i = j;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* valid text: each invalid sequence read as U+FFFD, as the BPE encoder does */
    unsigned char *text = malloc(3 * size + 1);
    size_t len = 0;
    for (size_t i = 0; i < size;) {
        uint32_t cp, lcp;
        int k = utf8_decode(data + i, size - i, &cp);
        int kl = utf8_decode_lossy(data + i, size - i, &lcp);
        FZ_CHECK(kl >= 1 && kl <= 4 && (size_t)kl <= size - i);
        if (k) {
            char buf[4];
            FZ_CHECK(k >= 1 && k <= 4 && cp <= UTF8_MAX_CP && !(cp >= 0xD800 && cp <= 0xDFFF));
            FZ_CHECK(utf8_encode(cp, buf) == k && memcmp(buf, data + i, (size_t)k) == 0);
            FZ_CHECK(kl == k && lcp == cp);
        } else {
            FZ_CHECK(lcp == UTF8_REPLACEMENT);
        }
        len += (size_t)utf8_encode(lcp, (char *)text + len);
        i += (size_t)kl;
    }
    /* the lossy result is valid, strictly */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(text + i, len - i, &cp);
        FZ_CHECK(k > 0);
        i += (size_t)k;
    }
    size_t *whole = malloc((len + 1) * sizeof *whole), *parts = malloc((len + 1) * sizeof *parts);
    size_t n = pieces(text, len, whole);
    size_t cut = pretok_safe_cut(text, len);
    FZ_CHECK(cut <= len);
    if (cut > 0) {
        size_t a = pieces(text, cut, parts);
        size_t b = pieces(text + cut, len - cut, parts + a);
        for (size_t k = a; k < a + b; k++) parts[k] += cut;
        FZ_CHECK(a + b == n && memcmp(whole, parts, n * sizeof *whole) == 0);
    }
    free(whole);
    free(parts);
    free(text);
    return 0;
}
