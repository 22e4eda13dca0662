/* bench_bpe_encode DIR FILE...: byte-level BPE encoding speed of dtrain on one core. For
 * each file: the best of 3 runs of bpe_encode over the whole text (read beforehand), each
 * with a fresh tokenizer (an empty piece cache), in CPU seconds of this process, so that
 * other load on a shared machine counts less. Prints "FILE bytes ids seconds MB/s". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bpe.h"

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int bench_file(const char *dir, const char *path) {
    size_t len;
    char *text = slurp(path, &len), err[1024];
    if (!text) {
        fprintf(stderr, "bench_bpe_encode: cannot read %s\n", path);
        return 1;
    }
    double best = 1e30;
    size_t nids = 0;
    for (int rep = 0; rep < 3; rep++) {
        bpe *b = bpe_load_dir(dir, err, sizeof err);
        if (!b) {
            fprintf(stderr, "bench_bpe_encode: %s\n", err);
            free(text);
            return 1;
        }
        idvec ids = {0};
        double t0 = cpu_seconds();
        int rc = bpe_encode(b, text, len, &ids);
        double t = cpu_seconds() - t0;
        if (rc == 0 && t < best) best = t;
        nids = ids.n;
        idvec_free(&ids);
        bpe_free(b);
    }
    printf("%s %zu %zu %.4f %.2f\n", path, len, nids, best, (double)len / best / 1e6);
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_bpe_encode DIR FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 2; i < argc; i++) rc |= bench_file(argv[1], argv[i]);
    return rc;
}
