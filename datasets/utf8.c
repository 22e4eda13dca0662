/* utf8.c: the UTF-8 rules of RFC 3629, nothing more. */
#include "utf8.h"

/* The length a lead byte announces, or 0 for a byte that cannot start a sequence. */
static int lead_length(unsigned char b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2; /* 0xC0, 0xC1 could only start overlong forms */
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4; /* above 0xF4 lies beyond U+10FFFF */
    return 0;
}

int utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    int n = lead_length(s[0]);
    if (n == 0 || (size_t)n > len) return 0;
    static const unsigned char lead_bits[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t v = s[0] & lead_bits[n];
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_for_length[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_for_length[n] || v > UTF8_MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

int utf8_encode(uint32_t cp, char *buf) {
    unsigned char *b = (unsigned char *)buf;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The second byte's range for each lead: narrower than 0x80..0xBF where the full range
 * would allow overlong forms (E0, F0), surrogates (ED) or values past U+10FFFF (F4). */
static void second_range(unsigned char lead, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (lead == 0xE0) *lo = 0xA0;
    else if (lead == 0xED) *hi = 0x9F;
    else if (lead == 0xF0) *lo = 0x90;
    else if (lead == 0xF4) *hi = 0x8F;
}

int utf8_decode_lossy(const unsigned char *s, size_t len, uint32_t *cp) {
    int n = utf8_decode(s, len, cp);
    if (n > 0) return n;
    *cp = UTF8_REPLACEMENT;
    int want = lead_length(s[0]);
    if (want <= 1) return 1; /* a byte that cannot start a sequence */
    unsigned char lo, hi;
    second_range(s[0], &lo, &hi);
    /* the maximal subpart: the lead and the continuation bytes that could still have
     * completed a valid sequence */
    int k = 1;
    while (k < want && (size_t)k < len && s[k] >= (k == 1 ? lo : 0x80) && s[k] <= (k == 1 ? hi : 0xBF)) k++;
    return k;
}
