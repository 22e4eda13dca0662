/* dump_file.c: see dump_file.h. */
#include "dump_file.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

float *dump_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) DIE("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes < (long)sizeof(float) || bytes % (long)sizeof(float)) DIE("%s: %ld bytes, not floats", path, bytes);
    float *p = xmalloc((size_t)bytes);
    if (fread(p, 1, (size_t)bytes, f) != (size_t)bytes) DIE("%s: short read", path);
    fclose(f);
    *n = (size_t)bytes / sizeof(float);
    return p;
}

const char *take_arg(int *argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp(argv[i], name) == 0) {
            const char *v = argv[i + 1];
            memmove(argv + i, argv + i + 2, (size_t)(*argc - i - 2) * sizeof *argv);
            *argc -= 2;
            return v;
        }
    return NULL;
}
