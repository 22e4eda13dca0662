/* image_labels.h: checks the labels of an image shard against the classes a model has. */
#ifndef DTRAIN_IMAGE_LABELS_H
#define DTRAIN_IMAGE_LABELS_H

#include <stddef.h>

#include "image_shard.h"

/* 0 if every label of the shard is in 0..nclasses-1; else -1 and a one-line message in err
 * naming the file, the dataset, the first bad label and its index in the split, e.g.
 * "data/x.h5: /train/labels: label 42 at index 22: expected 0..9". A label out of range
 * would otherwise index past the model's classes (an abort in the loss, or a read past a
 * label embedding), so jobs check once, when they open the data. */
int image_labels_check(const image_shard *s, const char *path, const char *split, int nclasses, char *err,
                       size_t errlen);

#endif
