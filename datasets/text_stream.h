/* text_stream.h: text inputs (files, directories, standard input) read as a sequence of
 * bounded chunks, each cut where GPT-2's pre-tokenizer would split anyway, so that
 * encoding chunk by chunk gives the ids of encoding each file whole (private to datasets/).
 *
 * A directory contributes its regular files, recursively, in name order (hidden files,
 * FIFOs and devices skipped; a link back to an enclosing directory is an error); "-" is
 * standard input. Files are never joined: each chunk comes from one file.
 * Memory: one buffer of TEXT_CHUNK_BYTES (plus the carried-over tail of the last cut). A
 * stretch of TEXT_CHUNK_BYTES with no cut point (no ASCII whitespace after a non-space) is
 * cut at a character boundary instead: the only place where chunking can change the ids. */
#ifndef DTRAIN_TEXT_STREAM_H
#define DTRAIN_TEXT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define TEXT_CHUNK_BYTES ((size_t)4 << 20)

typedef struct text_stream text_stream;

/* What text_stream_next checks in each file (errors name the file). */
#define TEXT_CHECK_EMPTY 1 /* the file holds at least one byte */
#define TEXT_CHECK_NUL 2   /* no NUL byte: text, not a binary file */

/* Lists the inputs (errors: a missing path, an empty directory); checks: TEXT_CHECK_*. */
text_stream *text_stream_open(const char *const *paths, int npaths, int checks, char *err, size_t errlen);
/* The next chunk: 1 with *chunk, *len set (valid until the next call), 0 at the end, -1
 * and a line in err naming the file. */
int text_stream_next(text_stream *s, const char **chunk, size_t *len, char *err, size_t errlen);
int text_stream_file_count(const text_stream *s);
/* The bytes handed out so far, and the total size of the regular files (0 for stdin). */
uint64_t text_stream_done(const text_stream *s);
uint64_t text_stream_total(const text_stream *s);
void text_stream_close(text_stream *s);

#endif
