/* mnist_idx.h: the classic idx file format (MNIST, Fashion-MNIST), gzipped or plain. */
#ifndef DTRAIN_MNIST_IDX_H
#define DTRAIN_MNIST_IDX_H

#include <stddef.h>
#include <stdint.h>

/* Reads an idx3 image file (magic 0x00000803). On success returns 0 and sets *pixels to a
 * malloc'd n*rows*cols array (the caller frees it). On failure returns -1 and writes a
 * one-line message naming the file and what is wrong into err: bad magic, a header or
 * payload shorter than the dimensions announce, or data after the payload. Gzip is
 * detected by content, not by name. */
int idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols,
                    char *err, size_t errlen);

/* Reads an idx1 label file (magic 0x00000801) the same way. Any byte value is accepted
 * here; prepare_mnist checks that MNIST's labels are < 10. */
int idx_read_labels(const char *path, uint8_t **labels, int *n, char *err, size_t errlen);

/* `dtrain prepare mnist`: reads DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz],
 * checks them (28x28 images, as many labels as images, labels < 10) and writes one HDF5
 * file with /train/images (N x 28 x 28 x 1 uint8, chunked), /train/labels (N uint8),
 * /test/images, /test/labels and attributes (root: "format" = "dtrain-images-v1" and
 * "source"; each group: "count"). The file is written under a temporary name and renamed
 * into place, so a failure leaves no partial output. Returns 0, or -1 and a line in err. */
int prepare_mnist(const char *idx_dir, const char *out_path, char *err, size_t errlen);

#endif
