/* image_shard.h: one rank's shard of an HDF5 image dataset (/SPLIT/images, /SPLIT/labels).
 *
 * Rank r of W owns the contiguous examples [begin, end) of the split, with sizes that
 * differ by at most one (balanced partition), so the shards are disjoint and their union is
 * the whole split. Only the rank's own hyperslab is ever read from the file. */
#ifndef DTRAIN_IMAGE_SHARD_H
#define DTRAIN_IMAGE_SHARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct image_shard image_shard;

/* Opens FILE's /SPLIT/images (N x H x W x C uint8) and /SPLIT/labels (N uint8) read-only
 * and loads this rank's shard. Before allocating it checks the types, ranks and shapes
 * (one label per image, at most 64 MiB per image and 2^31 - 1 images, the rank's shard
 * within the machine's memory) and that all of both datasets was written and lies in this
 * file (h5_check.h). NULL and a one-line message in err on failure; a chunk that
 * fails its Fletcher32 checksum (prepare mnist writes one per chunk; files without the
 * filter are not checked) reads "FILE: /SPLIT/images: checksum mismatch (file corrupted)
 * in examples A..B". */
image_shard *image_shard_open(const char *path, const char *split, int rank, int world,
                              char *err, size_t errlen);
void image_shard_close(image_shard *s);

/* Opens exactly the examples idx[0..n) of the split (global indices, strictly increasing),
 * read with one union-of-hyperslabs selection. Used for the rest of an epoch after a resume
 * on a different number of ranks. `rank` seeds the shuffle like a regular shard's; size()
 * is n, and image_shard_get reports the examples' global indices. */
image_shard *image_shard_open_subset(const char *path, const char *split, int rank, const long *idx,
                                     long n, char *err, size_t errlen);

long image_shard_size(const image_shard *s);   /* examples in this shard */
long image_shard_begin(const image_shard *s);  /* global index of its first example */
long image_shard_total(const image_shard *s);  /* examples in the whole split */
int image_shard_height(const image_shard *s);
int image_shard_width(const image_shard *s);
int image_shard_channels(const image_shard *s);

/* 0 if s's images have ref's shape (H x W x C); else -1 and one line in err, e.g.
 * "F: /test/images: images of 32 x 32 x 1: expected 28 x 28 x 1, the shape of /train/images".
 * Jobs size their buffers and model from the train split, so a test split shaped otherwise
 * would overflow them in evaluation: they check once, when they open the data. */
int image_shard_check_like(const image_shard *s, const image_shard *ref, const char *path, const char *split,
                           const char *ref_split, char *err, size_t errlen);

/* The shard-local shard_begin(r, world, total) partition, exposed for tests and resume. */
long shard_begin(int rank, int world, long total);

/* Orders the shard for an epoch: a permutation drawn from (seed, epoch, rank) alone, not
 * from earlier epochs; shuffle=0 keeps file order. Deterministic across runs and machines.
 * Examples stay on their rank: the shuffle is within the shard. */
void image_shard_set_epoch(image_shard *s, uint64_t seed, long epoch, int shuffle);

/* Copies examples order[pos .. pos+n) of the current epoch: images as n x H x W x C uint8,
 * labels as n uint8, and their global indices in the split; any output may be NULL.
 * Until the first set_epoch the order is the file order. pos+n beyond the shard aborts. */
void image_shard_get(const image_shard *s, long pos, int n, uint8_t *images,
                     uint8_t *labels, long *global_idx);

#endif
