#include "image_labels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK 4096

int image_labels_check(const image_shard *s, const char *path, const char *split, int nclasses, char *err,
                       size_t errlen) {
    uint8_t labels[CHUNK];
    long idx[CHUNK];
    const long n = image_shard_size(s);
    /* before any set_epoch the order is the file order; image_shard_get reports each
     * example's index in the split either way */
    for (long pos = 0; pos < n; pos += CHUNK) {
        int m = n - pos < CHUNK ? (int)(n - pos) : CHUNK;
        image_shard_get(s, pos, m, NULL, labels, idx);
        for (int i = 0; i < m; i++)
            if (labels[i] >= nclasses) {
                snprintf(err, errlen, "%s: /%s/labels: label %d at index %ld: expected 0..%d", path, split,
                         labels[i], idx[i], nclasses - 1);
                return -1;
            }
    }
    return 0;
}
