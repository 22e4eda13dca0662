/* pretok.c: GPT-2's pre-tokenizer regex as a hand-written scanner (see pretok.h). */
#include "pretok.h"

#include <stdint.h>

#include <utf8proc.h>

#include "utf8.h"

enum { K_LETTER, K_NUMBER, K_SPACE, K_OTHER };

/* ASCII, the common case, by table: letters, digits, the six whitespace bytes. */
static const unsigned char ascii_class[128] = {
    ['\t'] = K_SPACE + 1, ['\n'] = K_SPACE + 1, ['\v'] = K_SPACE + 1, ['\f'] = K_SPACE + 1,
    ['\r'] = K_SPACE + 1, [' '] = K_SPACE + 1,
#define R10(a) [a] = K_NUMBER + 1, [a + 1] = K_NUMBER + 1, [a + 2] = K_NUMBER + 1, [a + 3] = K_NUMBER + 1, \
                [a + 4] = K_NUMBER + 1, [a + 5] = K_NUMBER + 1, [a + 6] = K_NUMBER + 1,                    \
                [a + 7] = K_NUMBER + 1, [a + 8] = K_NUMBER + 1, [a + 9] = K_NUMBER + 1
    R10('0'),
#define L13(a) [a] = 1, [a + 1] = 1, [a + 2] = 1, [a + 3] = 1, [a + 4] = 1, [a + 5] = 1, [a + 6] = 1, \
                [a + 7] = 1, [a + 8] = 1, [a + 9] = 1, [a + 10] = 1, [a + 11] = 1, [a + 12] = 1
    L13('A'), L13('N'), L13('a'), L13('n'),
}; /* stored + 1 so that 0 means "other" */

/* Unicode's White_Space property, beyond ASCII. */
static int is_unicode_space(uint32_t cp) {
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int unicode_class(uint32_t cp) {
    if (is_unicode_space(cp)) return K_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return K_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return K_NUMBER;
    default: return K_OTHER;
    }
}

/* The class of the code point at s[i], and its byte length in *n. */
static int class_at(const unsigned char *s, size_t len, size_t i, size_t *n) {
    if (s[i] < 0x80) {
        *n = 1;
        int c = ascii_class[s[i]];
        return c ? c - 1 : K_OTHER;
    }
    uint32_t cp;
    *n = (size_t)utf8_decode_lossy(s + i, len - i, &cp);
    return unicode_class(cp);
}

/* The end of the run of class k that starts at i. */
static size_t run_end(const unsigned char *s, size_t len, size_t i, int k) {
    size_t n;
    while (i < len && class_at(s, len, i, &n) == k) i += n;
    return i;
}

/* 's 't 're 've 'm 'll 'd: the length of the contraction at i, or 0. */
static size_t contraction(const unsigned char *s, size_t len, size_t i) {
    if (s[i] != '\'' || i + 1 >= len) return 0;
    unsigned char a = s[i + 1], b = i + 2 < len ? s[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S) then \s+: a whitespace run at the end of the text is one piece; one followed
 * by other text leaves its last character to the piece after it (where " ?\p{L}+" and
 * its siblings may take a leading space), unless the run is that one character. */
static size_t space_piece(const unsigned char *s, size_t len, size_t i) {
    size_t last = i, j = i, n;
    while (j < len && class_at(s, len, j, &n) == K_SPACE) {
        last = j;
        j += n;
    }
    if (j == len || last == i) return j;
    return last;
}

size_t pretok_next(const unsigned char *s, size_t len, size_t i) {
    size_t n = contraction(s, len, i);
    if (n) return i + n;
    int k = class_at(s, len, i, &n);
    if (s[i] == ' ' && i + 1 < len) {
        size_t m;
        int next = class_at(s, len, i + 1, &m);
        if (next != K_SPACE) return run_end(s, len, i + 1 + m, next);
    }
    if (k != K_SPACE) return run_end(s, len, i + n, k);
    return space_piece(s, len, i);
}

static int ascii_space(unsigned char b) { return b == ' ' || (b >= '\t' && b <= '\r'); }

size_t pretok_safe_cut(const unsigned char *s, size_t len) {
    for (size_t c = len; c >= 2; c--)
        if (ascii_space(s[c - 1]) && s[c - 2] < 0x80 && !ascii_space(s[c - 2])) return c - 1;
    return 0;
}
