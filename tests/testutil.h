/* testutil.h: scratch directories for the unit tests. */
#ifndef DTRAIN_TESTUTIL_H
#define DTRAIN_TESTUTIL_H

#include <stddef.h>

/* Creates /tmp/dtrain_test_NAME_XXXXXX into buf; returns buf, or NULL on failure. */
char *test_mkdtemp(char *buf, size_t len, const char *name);
/* rm -rf: removes a file or a directory tree (made writable first, for read-only tests). */
void test_rm_tree(const char *path);

#endif
