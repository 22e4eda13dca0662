/* util.h: checked allocation and I/O, fatal errors, wall clock. Every failure names the
 * source file and line where it happened, so a report from a cluster points at the code. */
#ifndef DTRAIN_UTIL_H
#define DTRAIN_UTIL_H

#include <stddef.h>
#include <stdio.h>

_Noreturn void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define DIE(...) die_at(__FILE__, __LINE__, __VA_ARGS__)

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s) xcalloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)

/* Seconds from a monotonic clock. */
double now_sec(void);

/* mkdir -p; 0 on success, -1 with a message naming the path in err. */
int mkdir_p(const char *path, char *err, size_t errlen);

/* Writes `text` to path atomically (temporary file, fsync, rename). 0 or -1 + err. */
int write_file_atomic(const char *path, const char *text, size_t len, char *err,
                      size_t errlen);

#endif
