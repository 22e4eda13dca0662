/* tool_bpe: a byte-level BPE tokenizer (DIR/vocab.json + DIR/merges.txt) on a file, for the
 * exactness test (tests/it_bpe.sh) and the encoding benchmark.
 *   tool_bpe encode DIR FILE OUT   the ids of FILE's bytes, one per line, into OUT
 *   tool_bpe decode DIR FILE OUT   the ids of FILE (one per line) decoded back to bytes */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *c = realloc(b, cap * 2);
        if (!c) free(b);
        b = c;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return b;
}

static int encode(bpe *b, const char *in, const char *out) {
    size_t len;
    char *text = slurp(in, &len);
    idvec ids = {0};
    FILE *f = text ? fopen(out, "w") : NULL;
    int rc = f && bpe_encode(b, text, len, &ids) == 0 ? 0 : 1;
    for (size_t i = 0; rc == 0 && i < ids.n; i++) fprintf(f, "%d\n", (int)ids.v[i]);
    if (f && fclose(f) != 0) rc = 1;
    idvec_free(&ids);
    free(text);
    return rc;
}

static int decode(bpe *b, const char *in, const char *out) {
    FILE *f = fopen(in, "r"), *o = f ? fopen(out, "wb") : NULL;
    int rc = f && o ? 0 : 1, id;
    while (rc == 0 && fscanf(f, "%d", &id) == 1) {
        int n;
        const char *p = bpe_token_bytes(b, id, &n);
        if (!p) rc = 1;
        else fwrite(p, 1, (size_t)n, o);
    }
    if (f) fclose(f);
    if (o && fclose(o) != 0) rc = 1;
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: tool_bpe encode|decode DIR IN OUT\n");
        return 2;
    }
    char err[1024];
    bpe *b = bpe_load_dir(argv[2], err, sizeof err);
    if (!b) {
        fprintf(stderr, "tool_bpe: %s\n", err);
        return 2;
    }
    int rc = strcmp(argv[1], "encode") == 0 ? encode(b, argv[3], argv[4]) : decode(b, argv[3], argv[4]);
    if (rc) fprintf(stderr, "tool_bpe: %s %s failed: %s\n", argv[1], argv[3], strerror(errno));
    bpe_free(b);
    return rc;
}
