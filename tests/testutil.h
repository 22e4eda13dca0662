/* testutil.h: scratch directories for the unit tests. */
#ifndef DTRAIN_TESTUTIL_H
#define DTRAIN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates /tmp/dtrain_test_NAME_XXXXXX into buf; returns buf, or NULL on failure. */
char *test_mkdtemp(char *buf, size_t len, const char *name);
/* rm -rf: removes a file or a directory tree (made writable first, for read-only tests). */
void test_rm_tree(const char *path);

/* DIR/NAME, asserting that it fits. */
typedef struct {
    char s[1024];
} pathbuf;
pathbuf path_join(const char *dir, const char *name);

/* Kernel tests: a kernels_alloc'd buffer of uniform values in [lo, hi) from a seed
 * (gc_fill_uniform), a kernels_alloc'd copy, a zeroed double buffer, "b == a + c within tol"
 * (how a backward pass that accumulates is checked; a NaN always fails), and "a == b bit for
 * bit" (NaN matching NaN; how runs at different thread counts are compared). */
float *rand_floats(size_t n, uint64_t seed, float lo, float hi);
float *copy_of(const float *x, size_t n);
double *dalloc(size_t n);
void expect_sum(const float *b, const float *a, const float *c, size_t n, double tol, const char *what);
void expect_same(const float *a, const float *b, size_t n, const char *what);

#endif
