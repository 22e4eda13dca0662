/* fuzz_idx: the idx reader (datasets/mnist_idx.c), plain and gzipped. The input is the file:
 * read as images (any size, then 28x28) and as labels. Whatever it accepts must be whole:
 * the harness reads every byte it returns. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "mnist_idx.h"

static unsigned touch(const uint8_t *p, size_t n) {
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += p[i];
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("input.idx");
    fz_write_file(path, data, size);
    char err[512];
    uint8_t *px, *labels;
    int n, rows, cols;
    volatile unsigned sink = 0;
    if (idx_read_images(path, &px, &n, &rows, &cols, err, sizeof err) == 0) {
        if (n < 0 || rows < 0 || cols < 0) abort();
        sink += touch(px, (size_t)n * (size_t)rows * (size_t)cols);
        free(px);
    }
    if (idx_read_images_sized(path, 28, 28, &px, &n, &rows, &cols, err, sizeof err) == 0) {
        if (rows != 28 || cols != 28 || n < 0) abort();
        sink += touch(px, (size_t)n * 28 * 28);
        free(px);
    }
    if (idx_read_labels(path, &labels, &n, err, sizeof err) == 0) {
        if (n < 0) abort();
        sink += touch(labels, (size_t)n);
        free(labels);
    }
    (void)sink;
    return 0;
}
