/* pretok.h: GPT-2's pre-tokenizer (private to datasets/).
 *
 * Splits text into the pieces that byte-level BPE then encodes one by one, exactly as the
 * regular expression of GPT-2 (and of the Hugging Face ByteLevel pre-tokenizer) does:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * written out by hand as a scanner over code-point classes, so that no regex engine is
 * needed and each byte is looked at about once. Letters and numbers are Unicode's general
 * categories L* and N* (utf8proc's tables); \s is Unicode's White_Space property. */
#ifndef DTRAIN_PRETOK_H
#define DTRAIN_PRETOK_H

#include <stddef.h>

/* The end of the piece that starts at byte i of s[0, len) (i < len). s must be valid UTF-8
 * (the callers replace invalid sequences with U+FFFD first). */
size_t pretok_next(const unsigned char *s, size_t len, size_t i);

/* A byte offset in (0, len] at which s can be cut so that pre-tokenizing the two parts
 * separately gives the same pieces as the whole: just before an ASCII whitespace byte
 * that follows an ASCII byte that is not whitespace, searching back from len. 0 if s holds
 * no such place. */
size_t pretok_safe_cut(const unsigned char *s, size_t len);

#endif
