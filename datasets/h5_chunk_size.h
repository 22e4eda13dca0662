/* h5_chunk_size.h: a check of what HDF5 1.10 does not check itself (private to datasets/;
 * core/checkpoint.c uses it too).
 *
 * HDF5 1.10.8 trusts the size its chunk index records for a chunk. Reading a dataset whose
 * unfiltered chunk is recorded shorter than the chunk (a crafted or damaged file) copies
 * the full chunk out of a buffer of the recorded size, a heap overflow inside the library;
 * a Fletcher32 chunk recorded under 4 bytes makes its checksum filter read before its
 * buffer (found by tests/fuzz: fuzz_token_file, fuzz_image_shard). So each reader checks
 * the recorded sizes before its first read. */
#ifndef DTRAIN_H5_CHUNK_SIZE_H
#define DTRAIN_H5_CHUNK_SIZE_H

#include <stddef.h>

#include <hdf5.h>

/* 0 if dset is not chunked, or every allocated chunk is recorded at the size its storage
 * implies: exactly the chunk's bytes when stored unfiltered (no filter in the pipeline, or
 * all of them skipped for that chunk), 4 more through Fletcher32 alone (how dtrain writes);
 * other pipelines are not checked. Else -1 and "PATH: DPATH: a chunk at row R is stored
 * in X bytes: expected Y (the file is corrupt)". Looks only at the chunk index: a lookup per chunk when all are
 * allocated; for a partly written dataset (which the readers refuse anyway) a scan of the
 * index, done up to 4,096 allocated chunks. */
int h5_check_chunk_sizes(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen);

#endif
