/* h5_chunk_size.c: see h5_chunk_size.h. */
#include "h5_chunk_size.h"

#include <stdint.h>

#include "ds_util.h"

#define MAX_RANK 32       /* H5S_MAX_RANK */
#define SCAN_MAX 4096     /* H5Dget_chunk_info walks the index up to its argument: n^2 / 2 steps */

/* The pipeline, as far as sizes go: how many filters, and whether the first (and only) one
 * is Fletcher32, which adds 4 bytes and changes nothing else. */
typedef struct {
    int n;
    int fletcher_only;
} pipeline;

/* The size a chunk must be recorded at, for how it is stored; 0: not checked (a pipeline
 * that may change sizes). Unfiltered (no filter, or all skipped for this chunk): exactly
 * the chunk's bytes; through Fletcher32 alone: 4 more (HDF5 1.10.8's Fletcher32 filter
 * reads before its buffer on a chunk of under 4 bytes). */
static uint64_t expected_size(unsigned mask, const pipeline *p, uint64_t bytes) {
    int raw = p->n == 0 || (p->n < 32 && (mask & ((1u << p->n) - 1)) == (1u << p->n) - 1);
    if (raw) return bytes;
    return p->fletcher_only ? bytes + 4 : 0;
}

/* -1 and the message if the size is not the expected one */
static int check_size(const char *path, const char *dpath, hsize_t row, hsize_t size, uint64_t want, char *err,
                      size_t errlen) {
    if (want == 0 || size == want) return 0;
    return ds_fail(err, errlen, "%s: %s: a chunk at row %llu is stored in %llu bytes: expected %llu (the file is "
                   "corrupt)", path, dpath, (unsigned long long)row, (unsigned long long)size,
                   (unsigned long long)want);
}

int h5_check_chunk_sizes(hid_t dset, const char *path, const char *dpath, char *err, size_t errlen) {
    hid_t dcpl = H5Dget_create_plist(dset), space = H5Dget_space(dset), type = H5Dget_type(dset);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1, rc = 0;
    hsize_t dims[MAX_RANK] = {0}, cdims[MAX_RANK] = {0}, have = 0;
    int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED;
    int ok = rank >= 1 && rank <= MAX_RANK && type >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) == rank &&
             H5Pget_chunk(dcpl, rank, cdims) == rank && H5Dget_num_chunks(dset, space, &have) >= 0;
    int nfilters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : -1;
    unsigned flags;
    size_t ncd = 0;
    pipeline pipe = {nfilters, nfilters == 1 && H5Pget_filter2(dcpl, 0, &flags, &ncd, NULL, 0, NULL, NULL) ==
                                                    H5Z_FILTER_FLETCHER32};
    uint64_t bytes = type >= 0 ? H5Tget_size(type) : 0, need = 1;
    for (int d = 0; ok && d < rank; d++) {
        if (cdims[d] == 0 || bytes > UINT64_MAX / cdims[d]) ok = 0;
        else bytes *= cdims[d];
        uint64_t along = dims[d] == 0 ? 0 : (dims[d] - 1) / cdims[d] + 1;
        need = along != 0 && need > UINT64_MAX / along ? UINT64_MAX : need * along;
    }
    if (!chunked || rank == 0 || have == 0) {
        rc = 0;
    } else if (!ok || nfilters < 0) {
        rc = ds_fail(err, errlen, "%s: %s: cannot read its chunk layout", path, dpath);
    } else if (have >= need) { /* every position of the grid is allocated: a lookup each */
        hsize_t at[MAX_RANK] = {0};
        for (uint64_t i = 0; rc == 0 && i < need; i++) {
            unsigned mask = 0;
            haddr_t addr;
            hsize_t size = 0;
            if (H5Dget_chunk_info_by_coord(dset, at, &mask, &addr, &size) < 0)
                rc = ds_fail(err, errlen, "%s: %s: cannot read its chunk index", path, dpath);
            else
                rc = check_size(path, dpath, at[0], size, expected_size(mask, &pipe, bytes), err, errlen);
            for (int d = rank - 1; d >= 0; d--) { /* the next position, last dimension fastest */
                at[d] += cdims[d];
                if (at[d] < dims[d]) break;
                at[d] = 0;
            }
        }
    } else if (have <= SCAN_MAX) {
        for (hsize_t i = 0; rc == 0 && i < have; i++) {
            hsize_t at[MAX_RANK] = {0}, size = 0;
            unsigned mask = 0;
            haddr_t addr;
            if (H5Dget_chunk_info(dset, space, i, at, &mask, &addr, &size) < 0)
                rc = ds_fail(err, errlen, "%s: %s: cannot read its chunk index", path, dpath);
            else
                rc = check_size(path, dpath, at[0], size, expected_size(mask, &pipe, bytes), err, errlen);
        }
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc;
}
