#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gradcheck.h"
#include "kernels.h"

char *test_mkdtemp(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "/tmp/dtrain_test_%s_XXXXXX", name);
    return mkdtemp(buf);
}

void test_rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0755);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        test_rm_tree(sub);
    }
    if (d) closedir(d);
    rmdir(path);
}

pathbuf path_join(const char *dir, const char *name) {
    pathbuf p;
    int n = snprintf(p.s, sizeof p.s, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < sizeof p.s, "path too long");
    return p;
}

float *rand_floats(size_t n, uint64_t seed, float lo, float hi) {
    float *p = kernels_alloc(n);
    gc_fill_uniform(p, n, seed, lo, hi);
    return p;
}

float *copy_of(const float *x, size_t n) {
    float *p = kernels_alloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    cr_assert(p != NULL, "out of memory");
    return p;
}

void expect_sum(const float *b, const float *a, const float *c, size_t n, double tol, const char *what) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (double)a[i] + (double)c[i];
        double err = fabs(b[i] - want) / fmax(1.0, fabs(want));
        if (!(err <= worst)) worst = err; /* NaN sticks */
    }
    cr_expect(worst < tol, "%s: not accumulated (err %g)", what, worst);
}

void expect_same(const float *a, const float *b, size_t n, const char *what) {
    if (memcmp(a, b, n * sizeof(float)) == 0) return;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i] && !(isnan(a[i]) && isnan(b[i]))) {
            cr_expect(0, "%s: [%zu] differs: %.9g vs %.9g", what, i, a[i], b[i]);
            return;
        }
}
