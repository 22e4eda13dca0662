/* utf8.h: strict UTF-8 decoding and encoding (private to datasets/). */
#ifndef DTRAIN_UTF8_H
#define DTRAIN_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_MAX_CP 0x10FFFFu

/* Decodes the code point that starts at s[0] of the len bytes available: returns its byte
 * length (1-4) and sets *cp, or returns 0 when the bytes there are not valid UTF-8
 * (a stray continuation byte, a truncated sequence, an overlong form, a surrogate, or a
 * value above U+10FFFF). Strict, so that every code point has exactly one spelling and
 * "distinct code points" means distinct byte sequences. */
int utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Writes cp (at most U+10FFFF) as UTF-8 into buf (room for 4 bytes, no NUL); returns the
 * byte count. */
int utf8_encode(uint32_t cp, char *buf);

#define UTF8_REPLACEMENT 0xFFFDu

/* Like utf8_decode, but never fails (len > 0): an invalid sequence decodes to U+FFFD and
 * consumes its "maximal subpart" (Unicode's recommended practice, which Python's
 * bytes.decode(errors="replace") follows): the lead byte and as many continuation bytes as
 * could still have completed a valid sequence, or one byte if none. */
int utf8_decode_lossy(const unsigned char *s, size_t len, uint32_t *cp);

#endif
