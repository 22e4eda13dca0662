/* h5_check.c: see h5_check.h. */
#include "h5_check.h"

#include <unistd.h>

#include "ds_util.h"

#define MAX_RANK 32 /* HDF5's own limit (H5S_MAX_RANK) */

int ds_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return -1;
    *out = a * b;
    return 0;
}

uint64_t ds_memory_limit(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t bytes;
    if (pages <= 0 || page <= 0 || ds_mul_u64((uint64_t)pages, (uint64_t)page, &bytes) != 0) return UINT64_MAX;
    return bytes;
}

/* The number of chunks that cover dims, saturating at UINT64_MAX. */
static uint64_t chunks_needed(int rank, const hsize_t *dims, const hsize_t *cdims) {
    uint64_t n = 1;
    for (int d = 0; d < rank; d++) {
        uint64_t along = dims[d] == 0 ? 0 : (dims[d] - 1) / cdims[d] + 1;
        if (ds_mul_u64(n, along, &n) != 0) return UINT64_MAX;
    }
    return n;
}

/* The first chunk, in row-major order, that the index lacks; its first-dimension start goes
 * to *row. Only the first allocated + 1 positions need looking at: among them one is
 * missing. 0 if found. */
static int first_missing(hid_t dset, int rank, const hsize_t *dims, const hsize_t *cdims, uint64_t allocated,
                         hsize_t *row) {
    hsize_t at[MAX_RANK] = {0};
    for (uint64_t i = 0; i <= allocated; i++) {
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(dset, at, &mask, &addr, &size) < 0) return -1;
        if (addr == HADDR_UNDEF) {
            *row = at[0];
            return 0;
        }
        for (int d = rank - 1; d >= 0; d--) { /* the next chunk's offset, last dimension fastest */
            at[d] += cdims[d];
            if (at[d] < dims[d]) break;
            if (d == 0) return -1;
            at[d] = 0;
        }
    }
    return -1;
}

/* The size a chunk must be recorded at, for how it is stored (see h5_check.h); 0: not
 * checked (a pipeline that may change sizes). nfilters: the pipeline's length;
 * fletcher_only: it is Fletcher32 alone, which adds 4 bytes and changes nothing else. */
static uint64_t expected_size(unsigned mask, int nfilters, int fletcher_only, uint64_t bytes) {
    int raw = nfilters == 0 || (nfilters < 32 && (mask & ((1u << nfilters) - 1)) == (1u << nfilters) - 1);
    if (raw) return bytes;
    return fletcher_only ? bytes + 4 : 0;
}

int h5_check_chunk_sizes(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen) {
    hid_t dcpl = H5Dget_create_plist(dset), space = H5Dget_space(dset), type = H5Dget_type(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1, rc = 0;
    hsize_t dims[MAX_RANK] = {0}, cdims[MAX_RANK] = {0}, have = 0;
    int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED;
    int ok = chunked && rank >= 1 && rank <= MAX_RANK && type >= 0 &&
             H5Sget_simple_extent_dims(space, dims, NULL) == rank && H5Pget_chunk(dcpl, rank, cdims) == rank &&
             H5Dget_num_chunks(dset, space, &have) >= 0;
    int nfilters = chunked ? H5Pget_nfilters(dcpl) : 0;
    unsigned flags;
    size_t ncd = 0;
    int fletcher_only = nfilters == 1 &&
                        H5Pget_filter2(dcpl, 0, &flags, &ncd, NULL, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32;
    uint64_t bytes = type >= 0 ? H5Tget_size(type) : 0;
    for (int d = 0; ok && d < rank; d++)
        if (cdims[d] == 0 || ds_mul_u64(bytes, cdims[d], &bytes) != 0) ok = 0;
    uint64_t need = ok ? chunks_needed(rank, dims, cdims) : 0;
    if (!chunked || rank == 0 || (ok && (have == 0 || have < need))) {
        rc = 0; /* nothing chunked to look at, or unwritten chunks: h5_check_storage's to refuse */
    } else if (!ok || nfilters < 0) {
        rc = ds_fail(err, errlen, "%s: %s: cannot read its chunk layout", path, dpath);
    } else {
        hsize_t at[MAX_RANK] = {0};
        for (uint64_t i = 0; rc == 0 && i < need; i++) {
            unsigned mask = 0;
            haddr_t addr;
            hsize_t size = 0;
            uint64_t want = 0;
            if (H5Dget_chunk_info_by_coord(dset, at, &mask, &addr, &size) < 0)
                rc = ds_fail(err, errlen, "%s: %s: cannot read its chunk index", path, dpath);
            else if ((want = expected_size(mask, nfilters, fletcher_only, bytes)) != 0 && size != want)
                rc = ds_fail(err, errlen, "%s: %s: a chunk at row %llu is stored in %llu bytes: expected %llu (the "
                             "file is corrupt)", path, dpath, (unsigned long long)at[0], (unsigned long long)size,
                             (unsigned long long)want);
            for (int d = rank - 1; d >= 0; d--) { /* the next chunk's offset, last dimension fastest */
                at[d] += cdims[d];
                if (at[d] < dims[d]) break;
                at[d] = 0;
            }
        }
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}

static int check_chunks(hid_t dset, hid_t dcpl, const char *path, const char *dpath, char *err, size_t errlen) {
    hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[MAX_RANK] = {0}, cdims[MAX_RANK] = {0}, have = 0;
    int ok = rank >= 0 && rank <= MAX_RANK && type >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) >= 0 &&
             H5Pget_chunk(dcpl, rank, cdims) == rank;
    /* HDF5 1.10 takes no H5S_ALL here: the dataset's whole extent, as a dataspace */
    int indexed = ok && H5Dget_num_chunks(dset, space, &have) >= 0;
    uint64_t bytes = type >= 0 ? H5Tget_size(type) : 0;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (!ok) return ds_fail(err, errlen, "%s: %s: cannot read its chunk layout", path, dpath);
    for (int d = 0; d < rank; d++)
        if (cdims[d] == 0 || ds_mul_u64(bytes, cdims[d], &bytes) != 0) bytes = UINT64_MAX;
    if (bytes > H5_CHECK_MAX_CHUNK_BYTES)
        return ds_fail(err, errlen, "%s: %s: chunks of %llu bytes: expected at most %llu (HDF5 reads a whole chunk "
                       "for any part of it)", path, dpath, (unsigned long long)bytes,
                       (unsigned long long)H5_CHECK_MAX_CHUNK_BYTES);
    if (!indexed) return ds_fail(err, errlen, "%s: %s: cannot read its chunk index", path, dpath);
    uint64_t need = chunks_needed(rank, dims, cdims);
    if (have >= need) return h5_check_chunk_sizes(dset, path, dpath, err, errlen);
    hsize_t row = 0;
    char where[160] = "";
    if (rank > 0 && first_missing(dset, rank, dims, cdims, have, &row) == 0) {
        hsize_t last = dims[0] - row < cdims[0] ? dims[0] - 1 : row + cdims[0] - 1;
        snprintf(where, sizeof where, " (the first holds items %llu..%llu, which would read as zeros)",
                 (unsigned long long)row, (unsigned long long)last);
    }
    return ds_fail(err, errlen, "%s: %s: %llu of %llu chunks were never written%s: expected a completely written "
                   "dataset (was the file's writer interrupted?)", path, dpath, (unsigned long long)(need - have),
                   (unsigned long long)need, where);
}

static int check_contiguous(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen) {
    hid_t space = H5Dget_space(dset);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
    if (n < 0 || H5Dget_space_status(dset, &status) < 0)
        return ds_fail(err, errlen, "%s: %s: cannot read its storage status", path, dpath);
    if (n > 0 && status != H5D_SPACE_STATUS_ALLOCATED)
        return ds_fail(err, errlen, "%s: %s: its %lld elements were never written (they would read as zeros): "
                       "expected a completely written dataset (was the file's writer interrupted?)", path, dpath,
                       (long long)n);
    return 0;
}

int h5_check_storage(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen) {
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return ds_fail(err, errlen, "%s: %s: cannot read its storage layout", path, dpath);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int external = H5Pget_external_count(dcpl), rc = 0;
    if (layout == H5D_VIRTUAL)
        rc = ds_fail(err, errlen, "%s: %s: a virtual dataset (its data lies in other files): expected the data "
                     "stored in this file", path, dpath);
    else if (external != 0)
        rc = ds_fail(err, errlen, "%s: %s: stored in %d external file(s): expected the data stored in this file",
                     path, dpath, external);
    else if (layout == H5D_CHUNKED)
        rc = check_chunks(dset, dcpl, path, dpath, err, errlen);
    else if (layout == H5D_CONTIGUOUS)
        rc = check_contiguous(dset, path, dpath, err, errlen);
    else if (layout != H5D_COMPACT)
        rc = ds_fail(err, errlen, "%s: %s: unknown storage layout %d", path, dpath, (int)layout);
    H5Pclose(dcpl);
    return rc;
}
