/* h5_check.h: what the dataset readers check of an HDF5 dataset's storage before they trust
 * what it reads as, and the memory limit they hold sizes to (private to datasets/).
 *
 * HDF5 answers a read of storage that was never written with the fill value (zeros), and of
 * a virtual or external dataset whose source files are missing the same way: a file whose
 * writer died, or a half-finished copy, would train silently on zeros. So before reading,
 * each reader asks where the data lives and whether all of it was written. */
#ifndef DTRAIN_H5_CHECK_H
#define DTRAIN_H5_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

/* The largest chunk a reader accepts, in bytes (uncompressed). HDF5 reads a whole chunk to
 * hand out any part of it, so a 4 GiB chunk (its own limit) would cost 4 GiB per window
 * read; ours write 200 KB chunks, h5py's automatic ones are at most 1 MiB. */
#define H5_CHECK_MAX_CHUNK_BYTES ((uint64_t)256 << 20)

/* 0 if every element of dset (path and dpath name it in messages) is stored in this file
 * and was written: a contiguous dataset whose space is allocated, a compact one, or a
 * chunked one with every chunk allocated and none above H5_CHECK_MAX_CHUNK_BYTES. Else -1
 * and one line in err, e.g. "F: /train/images: 3 of 235 chunks were never written (the
 * first holds rows 512..767, which would read as zeros): expected a completely written
 * dataset". Refused outright: virtual datasets and external storage (data in other files).
 * The cost is one pass over the chunk index, not over the data. */
int h5_check_storage(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen);

/* HDF5 1.10.8 trusts the size its chunk index records for a chunk: reading an unfiltered
 * chunk recorded shorter than the chunk copies the full chunk out of a buffer of the
 * recorded size (a heap overflow inside the library), and a Fletcher32 chunk recorded
 * under 4 bytes makes its filter read before its buffer (found by tests/fuzz:
 * fuzz_token_file, fuzz_image_shard). So every allocated chunk of dset (a dataset of any
 * layout; only chunked ones are looked at) must be recorded at the size its storage
 * implies: exactly the chunk's bytes unfiltered (no filter, or all skipped for that chunk),
 * 4 more through Fletcher32 alone (how dtrain writes); other pipelines are not checked.
 * 0 if so, else -1 and "F: D: a chunk at row R is stored in X bytes: expected Y (the file
 * is corrupt)". One lookup per chunk of the grid when all are allocated; a dataset with
 * unwritten chunks is left to h5_check_storage, which refuses it. h5_check_storage calls
 * this; core/checkpoint.c, which checks storage its own way, calls it directly. */
int h5_check_chunk_sizes(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen);

/* The memory a reader may plan to hold: the machine's physical memory (sysconf), or
 * UINT64_MAX when it cannot be read. Sizes beyond it are refused before any allocation,
 * rather than left to an allocation that fails, or succeeds and is killed later. */
uint64_t ds_memory_limit(void);

/* a * b into *out, 0; or -1 when the product does not fit 64 bits. */
int ds_mul_u64(uint64_t a, uint64_t b, uint64_t *out);

#endif
