/* mnist_idx.h: the classic idx file format (MNIST, Fashion-MNIST), gzipped or plain. */
#ifndef DTRAIN_MNIST_IDX_H
#define DTRAIN_MNIST_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "prepare.h"

/* Reads an idx3 image file (magic 0x00000803). On success returns 0 and sets *pixels to a
 * malloc'd n*rows*cols array (the caller frees it). On failure returns -1 and writes a
 * one-line message naming the file and what is wrong into err: bad magic, a header or
 * payload shorter than the dimensions announce, or data after the payload. Gzip is
 * detected by content, not by name; a gzip stream must be whole: a CRC or length mismatch,
 * a stream cut before its trailer, and bytes after the last gzip member are errors. */
int idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols,
                    char *err, size_t errlen);

/* idx_read_images for images of a known size (want_rows x want_cols; 0 for either: any).
 * The size is checked as soon as the header is read, so a header announcing another size
 * fails as "FILE: images are 32x32: expected 28x28", not as a truncated payload. */
int idx_read_images_sized(const char *path, int want_rows, int want_cols, uint8_t **pixels,
                          int *n, int *rows, int *cols, char *err, size_t errlen);

/* Reads an idx1 label file (magic 0x00000801) the same way. Any byte value is accepted
 * here; prepare_mnist checks that MNIST's labels are < 10. */
int idx_read_labels(const char *path, uint8_t **labels, int *n, char *err, size_t errlen);

/* `dtrain prepare mnist`: reads DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 * (exactly one of NAME and NAME.gz may exist), checks them (28x28 images, as many labels
 * as images, labels < 10) and writes one HDF5 file with /train/images (N x 28 x 28 x 1
 * uint8), /train/labels (N uint8), /test/images, /test/labels, all chunked with a
 * Fletcher32 checksum per chunk, and attributes (root: "format" = "dtrain-images-v1" and
 * "source"; each group: "count"). The file is written under a temporary name (removed
 * also on SIGINT, SIGTERM, SIGHUP) and renamed into place, so a failure leaves no partial
 * output and an existing output untouched. Returns PREPARE_OK, or PREPARE_BAD_INPUT or
 * PREPARE_FAILED and a line in err. */
int prepare_mnist(const char *idx_dir, const char *out_path, char *err, size_t errlen);

#endif
