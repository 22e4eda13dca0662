/* image_shard.c: one rank's contiguous shard of /SPLIT/images and /SPLIT/labels, held in
 * memory, with a per-epoch permutation. */
#include "image_shard.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "ds_util.h"
#include "h5_check.h"
#include "rng.h"

struct image_shard {
    long total, begin, size;
    int height, width, channels;
    int rank;
    size_t example_bytes; /* height * width * channels */
    uint8_t *images;      /* size x example_bytes, in file order */
    uint8_t *labels;      /* size */
    long *order;          /* this epoch's order: shard-local indices */
    long *index;          /* subsets only: global index of each held example */
};

/* floor(rank * total / world) without the overflow of rank * total */
long shard_begin(int rank, int world, long total) {
    if (world <= 0 || rank <= 0 || total <= 0) return 0;
    if (rank >= world) return total;
    long q = total / world, m = total % world;
    return q * rank + m * rank / world;
}

/* ---- opening and validating -------------------------------------------------------- */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} opener;

static int check_uint8(const opener *o, hid_t dset, const char *dpath) {
    hid_t type = H5Dget_type(dset);
    if (type < 0) return ds_fail(o->err, o->errlen, "%s: %s: cannot read its type", o->path, dpath);
    int ok = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    char got[32];
    h5_type_name(type, got, sizeof got);
    H5Tclose(type);
    if (!ok) return ds_fail(o->err, o->errlen, "%s: %s: expected uint8, got %s", o->path, dpath, got);
    return 0;
}

/* Opens the dataset at dpath, checks that it is uint8 and reads its shape. */
static hid_t open_u8(const opener *o, hid_t file, const char *dpath, const char *expect, int *rank,
                     hsize_t dims[4]) {
    if (!h5_path_exists(file, dpath)) {
        ds_fail(o->err, o->errlen, "%s: %s: not found: expected %s", o->path, dpath, expect);
        return H5I_INVALID_HID;
    }
    hid_t dset = H5Dopen2(file, dpath, H5P_DEFAULT);
    if (dset < 0) {
        ds_fail(o->err, o->errlen, "%s: %s: not a dataset: expected %s", o->path, dpath, expect);
        return H5I_INVALID_HID;
    }
    hid_t space = H5Dget_space(dset);
    *rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (*rank >= 0 && *rank <= 4) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (check_uint8(o, dset, dpath) != 0) {
        H5Dclose(dset);
        return H5I_INVALID_HID;
    }
    return dset;
}

/* Limits on what a split may declare, checked before anything is allocated: an image of
 * more than 64 MiB, or more than 2^31 - 1 examples (callers count them in int), is not an
 * MNIST-like dataset but a corrupt or hostile header. */
#define MAX_EXAMPLE_BYTES ((uint64_t)1 << 26)
#define MAX_EXAMPLES INT_MAX

static int set_shape(image_shard *s, const opener *o, const char *dpath, int rank, const hsize_t *dims) {
    if (rank != 3 && rank != 4)
        return ds_fail(o->err, o->errlen, "%s: %s: expected rank 3 or 4 (N x H x W [x C]), got rank %d", o->path,
                       dpath, rank);
    hsize_t c = rank == 4 ? dims[3] : 1;
    uint64_t bytes = 0;
    int fits = ds_mul_u64(dims[1], dims[2], &bytes) == 0 && ds_mul_u64(bytes, c, &bytes) == 0;
    if (dims[1] < 1 || dims[2] < 1 || c < 1 || !fits || bytes > MAX_EXAMPLE_BYTES)
        return ds_fail(o->err, o->errlen, "%s: %s: images of %llu x %llu x %llu: expected H, W, C >= 1 and at most "
                       "%llu bytes per image", o->path, dpath, (unsigned long long)dims[1],
                       (unsigned long long)dims[2], (unsigned long long)c, (unsigned long long)MAX_EXAMPLE_BYTES);
    if (dims[0] > MAX_EXAMPLES)
        return ds_fail(o->err, o->errlen, "%s: %s: %llu images: expected at most %d", o->path, dpath,
                       (unsigned long long)dims[0], MAX_EXAMPLES);
    s->total = (long)dims[0];
    s->height = (int)dims[1];
    s->width = (int)dims[2];
    s->channels = (int)c;
    s->example_bytes = (size_t)bytes;
    return 0;
}

/* A chunk whose Fletcher32 checksum fails (files from prepare mnist carry one per chunk;
 * older files without the filter read as before): the bytes on disk changed after they
 * were written, which no retry or other setting will fix, so say so plainly. */
static int checksum_fail(const opener *o, const char *dpath, long first, long n) {
    return ds_fail(o->err, o->errlen, "%s: %s: checksum mismatch (file corrupted) in examples %ld..%ld", o->path,
                   dpath, first, first + n - 1);
}

/* HDF5 1.10 keeps about 1 KB of bookkeeping for every chunk one H5Dread touches: a shard
 * stored in one-row chunks, read in one call, would need a GB per million chunks on top of
 * the shard (found by tests/fuzz: regressions/image_shard/many-chunks, in its writer). So a
 * read takes at most this many chunks' rows at a time. */
#define READ_MAX_CHUNKS 4096

/* How many rows one read may take: all of them for a dataset not chunked; else whole chunk
 * rows, as many as READ_MAX_CHUNKS chunks hold (at least one chunk row). */
static hsize_t rows_per_read(hid_t dset, int rank, const hsize_t *dims) {
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t cdims[4] = {0}, rows = 0;
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, rank, cdims) == rank &&
        cdims[0] > 0) {
        uint64_t per_row = 1; /* chunks across one chunk row, saturating */
        for (int d = 1; d < rank; d++) {
            uint64_t along = cdims[d] == 0 || dims[d] == 0 ? 1 : (dims[d] - 1) / cdims[d] + 1;
            if (ds_mul_u64(per_row, along, &per_row) != 0) per_row = UINT64_MAX;
        }
        uint64_t n = per_row >= READ_MAX_CHUNKS ? 1 : READ_MAX_CHUNKS / per_row;
        rows = cdims[0] > UINT64_MAX / n ? UINT64_MAX : cdims[0] * n;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    return rows == 0 ? (hsize_t)-1 : rows;
}

/* Reads rows [first, first + n) of dset, whose other dims are dims[1..rank), into buf. */
static int read_slab(const opener *o, hid_t dset, const char *dpath, int rank, const hsize_t *dims, long first,
                     long n, void *buf) {
    hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, count[4];
    count[0] = (hsize_t)n;
    for (int d = 1; d < rank; d++) count[d] = dims[d];
    hid_t fspace = H5Dget_space(dset), mspace = H5Screate_simple(rank, count, NULL);
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(dset, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, buf) >= 0;
    char why[512] = "";
    int corrupt = !ok && h5_error_is_checksum();
    if (!ok) h5_last_error(why, sizeof why);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (corrupt) return checksum_fail(o, dpath, first, n);
    if (!ok)
        return ds_fail(o->err, o->errlen, "%s: %s: cannot read examples %ld..%ld: %s", o->path, dpath, first,
                       first + n - 1, why);
    return 0;
}

/* Reads rows [s->begin, s->begin + s->size) of dset, whose other dims are dims[1..rank), a
 * bounded number of chunks at a time. */
static int read_rows(const image_shard *s, const opener *o, hid_t dset, const char *dpath, int rank,
                     const hsize_t *dims, void *buf) {
    size_t row = 1;
    for (int d = 1; d < rank; d++) row *= (size_t)dims[d]; /* within the shard, checked before */
    hsize_t step = rows_per_read(dset, rank, dims);
    for (long done = 0; done < s->size;) {
        long n = (hsize_t)(s->size - done) < step ? s->size - done : (long)step;
        int rc = read_slab(o, dset, dpath, rank, dims, s->begin + done, n, (uint8_t *)buf + (size_t)done * row);
        if (rc != 0) return rc;
        done += n;
    }
    return 0;
}

/* The shard's memory is planned against the machine's before it is claimed: a header that
 * declares billions of images must fail here, by name, not in malloc or the OOM killer. */
static int check_memory(const image_shard *s, const opener *o, const char *dpath) {
    uint64_t per = (uint64_t)s->example_bytes + 1 + sizeof *s->order, need;
    if (ds_mul_u64((uint64_t)s->size, per, &need) != 0 || need > ds_memory_limit() || need > SIZE_MAX)
        return ds_fail(o->err, o->errlen, "%s: %s: %ld images of %d x %d x %d need %.3g bytes on this rank: expected "
                       "at most this machine's memory (%.3g bytes)", o->path, dpath, s->size, s->height, s->width,
                       s->channels, (double)s->size * (double)per, (double)ds_memory_limit());
    return 0;
}

static int alloc_shard(image_shard *s, const opener *o, const char *dpath) {
    if (check_memory(s, o, dpath) != 0) return -1;
    size_t n = (size_t)s->size;
    s->images = malloc(n * s->example_bytes + 1);
    s->labels = malloc(n + 1);
    s->order = malloc((n + 1) * sizeof *s->order);
    if (!s->images || !s->labels || !s->order)
        return ds_fail(o->err, o->errlen, "%s: out of memory for a shard of %ld examples", o->path, s->size);
    for (long i = 0; i < s->size; i++) s->order[i] = i;
    return 0;
}

static int check_labels_shape(const image_shard *s, const opener *o, const char *dpath, int rank,
                              const hsize_t *dims) {
    if (rank != 1)
        return ds_fail(o->err, o->errlen, "%s: %s: expected rank 1 (N), got rank %d", o->path, dpath, rank);
    if (dims[0] != (hsize_t)s->total)
        return ds_fail(o->err, o->errlen, "%s: %s: holds %llu labels: expected %ld, one per image", o->path, dpath,
                       (unsigned long long)dims[0], s->total);
    return 0;
}

/* Everything the file declares is checked (types, shapes, limits, that all of the data was
 * written) before the shard is allocated and read. */
static int load_split(image_shard *s, const opener *o, hid_t file, const char *split, int world) {
    char ipath[512], lpath[512];
    snprintf(ipath, sizeof ipath, "/%s/images", split);
    snprintf(lpath, sizeof lpath, "/%s/labels", split);
    int irank = 0, lrank = 0;
    hsize_t idims[4] = {0}, ldims[4] = {0};
    hid_t img = open_u8(o, file, ipath, "an N x H x W [x C] uint8 dataset", &irank, idims);
    hid_t lab = img >= 0 ? open_u8(o, file, lpath, "an N uint8 dataset", &lrank, ldims) : H5I_INVALID_HID;
    int rc = img >= 0 && lab >= 0 ? 0 : -1;
    if (rc == 0) rc = set_shape(s, o, ipath, irank, idims);
    if (rc == 0) rc = check_labels_shape(s, o, lpath, lrank, ldims);
    if (rc == 0) {
        s->begin = shard_begin(s->rank, world, s->total);
        s->size = shard_begin(s->rank + 1, world, s->total) - s->begin;
        rc = check_memory(s, o, ipath);
    }
    if (rc == 0) rc = h5_check_storage(img, o->path, ipath, o->err, o->errlen);
    if (rc == 0) rc = h5_check_storage(lab, o->path, lpath, o->err, o->errlen);
    if (rc == 0) rc = alloc_shard(s, o, ipath);
    if (rc == 0) rc = read_rows(s, o, img, ipath, irank, idims, s->images);
    if (rc == 0) rc = read_rows(s, o, lab, lpath, 1, ldims, s->labels);
    if (lab >= 0) H5Dclose(lab);
    if (img >= 0) H5Dclose(img);
    return rc;
}

static int load(image_shard *s, const opener *o, const char *split, int world) {
    if (ds_check_readable(o->path, o->err, o->errlen) != 0) return -1;
    hid_t file = H5Fopen(o->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        char why[512];
        h5_last_error(why, sizeof why);
        return ds_fail(o->err, o->errlen, "%s: cannot open as HDF5: %s", o->path, why);
    }
    int rc = load_split(s, o, file, split, world);
    H5Fclose(file);
    return rc;
}

image_shard *image_shard_open(const char *path, const char *split, int rank, int world, char *err,
                              size_t errlen) {
    if (world < 1 || rank < 0 || rank >= world) {
        ds_fail(err, errlen, "%s: rank %d of world %d: expected 0 <= rank < world", path, rank, world);
        return NULL;
    }
    image_shard *s = calloc(1, sizeof *s);
    if (!s) {
        ds_fail(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    s->rank = rank;
    opener o = {path, err, errlen};
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = load(s, &o, split, world);
    h5_quiet_end(&q);
    if (rc != 0) {
        image_shard_close(s);
        return NULL;
    }
    return s;
}

void image_shard_close(image_shard *s) {
    if (!s) return;
    free(s->images);
    free(s->labels);
    free(s->order);
    free(s->index);
    free(s);
}

int image_shard_check_like(const image_shard *s, const image_shard *ref, const char *path, const char *split,
                           const char *ref_split, char *err, size_t errlen) {
    if (s->height == ref->height && s->width == ref->width && s->channels == ref->channels) return 0;
    return ds_fail(err, errlen, "%s: /%s/images: images of %d x %d x %d: expected %d x %d x %d, the shape of "
                   "/%s/images", path, split, s->height, s->width, s->channels, ref->height, ref->width,
                   ref->channels, ref_split);
}

long image_shard_size(const image_shard *s) { return s->size; }
long image_shard_begin(const image_shard *s) { return s->begin; }
long image_shard_total(const image_shard *s) { return s->total; }
int image_shard_height(const image_shard *s) { return s->height; }
int image_shard_width(const image_shard *s) { return s->width; }
int image_shard_channels(const image_shard *s) { return s->channels; }

/* ---- shuffling: base/rng.h's generator, so that an order never depends on libc ------- */

/* Each input passes through SplitMix64 before the next is mixed in, so nearby triples
 * (epoch 1 vs 2, rank 0 vs 1) give unrelated streams. */
static void seed_stream(rng *r, uint64_t seed, long epoch, int rank) {
    uint64_t x = seed;
    x = rng_splitmix64(&x) ^ (uint64_t)epoch;
    x = rng_splitmix64(&x) ^ (uint64_t)(int64_t)rank;
    x = rng_splitmix64(&x);
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

/* Uniform in [0, bound) by rejection. It rejects the lowest 2^64 mod bound draws where
 * rng_below rejects the highest: either is unbiased, but a different choice would change
 * (with odds below bound / 2^64 a draw) the order every shuffled run and checkpoint so far
 * was made with (tests/test_image_shard.c pins it). */
static uint64_t below(rng *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound, x;
    do x = rng_u64(r);
    while (x < threshold);
    return x % bound;
}

void image_shard_set_epoch(image_shard *s, uint64_t seed, long epoch, int shuffle) {
    /* from the identity every time: an epoch's order must not depend on the epochs before
     * it, or a resumed run would see different data */
    for (long i = 0; i < s->size; i++) s->order[i] = i;
    if (!shuffle) return;
    rng r;
    seed_stream(&r, seed, epoch, s->rank);
    for (long i = s->size - 1; i > 0; i--) {
        long j = (long)below(&r, (uint64_t)i + 1);
        long t = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = t;
    }
}

void image_shard_get(const image_shard *s, long pos, int n, uint8_t *images, uint8_t *labels,
                     long *global_idx) {
    if (pos < 0 || n < 0 || pos > s->size - n) {
        /* a caller's bug; carrying on would hand the model garbage */
        fprintf(stderr, "image_shard_get: rank %d: examples %ld..%ld are outside the shard of %ld\n", s->rank,
                pos, pos + n - 1, s->size);
        abort();
    }
    for (int i = 0; i < n; i++) {
        long j = s->order[pos + i];
        if (images) memcpy(images + (size_t)i * s->example_bytes, s->images + (size_t)j * s->example_bytes,
                           s->example_bytes);
        if (labels) labels[i] = s->labels[j];
        if (global_idx) global_idx[i] = s->index ? s->index[j] : s->begin + j;
    }
}

/* ---- subsets: arbitrary examples, for the rest of an epoch after a world-size change ---- */

/* Selects the rows idx[0..n) (sorted, distinct) of a dataset of the given rank as a union
 * of hyperslabs, one per run of consecutive indices. */
static int select_rows(hid_t fspace, int rank, const hsize_t *dims, const long *idx, long n) {
    if (H5Sselect_none(fspace) < 0) return -1;
    hsize_t start[4] = {0, 0, 0, 0}, count[4];
    for (int d = 1; d < rank; d++) count[d] = dims[d];
    for (long i = 0; i < n;) {
        long j = i + 1;
        while (j < n && idx[j] == idx[j - 1] + 1) j++;
        start[0] = (hsize_t)idx[i];
        count[0] = (hsize_t)(j - i);
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, NULL, count, NULL) < 0) return -1;
        i = j;
    }
    return 0;
}

static int read_subset(const opener *o, hid_t file, const char *dpath, const long *idx, long n,
                       void *buf) {
    hid_t dset = H5Dopen2(file, dpath, H5P_DEFAULT);
    if (dset < 0) return ds_fail(o->err, o->errlen, "%s: %s: cannot open", o->path, dpath);
    hid_t fspace = H5Dget_space(dset);
    int rank = H5Sget_simple_extent_ndims(fspace);
    hsize_t dims[4] = {0, 0, 0, 0}, mdims[4];
    H5Sget_simple_extent_dims(fspace, dims, NULL);
    for (int d = 0; d < rank; d++) mdims[d] = dims[d];
    mdims[0] = (hsize_t)n;
    hid_t mspace = H5Screate_simple(rank, mdims, NULL);
    int ok = n == 0 || (select_rows(fspace, rank, dims, idx, n) == 0 &&
                        H5Dread(dset, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, buf) >= 0);
    int corrupt = !ok && h5_error_is_checksum();
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(dset);
    if (corrupt) return checksum_fail(o, dpath, idx[0], idx[n - 1] - idx[0] + 1);
    if (!ok) return ds_fail(o->err, o->errlen, "%s: %s: cannot read %ld selected examples", o->path, dpath, n);
    return 0;
}

image_shard *image_shard_open_subset(const char *path, const char *split, int rank, const long *idx,
                                     long n, char *err, size_t errlen) {
    /* the full-shard opener validates the file and the shapes; world = total would read
     * one example, so open rank 0 of a world as large as possible cheaply: a 0-row shard */
    image_shard *s = image_shard_open(path, split, 0, 1 << 30, err, errlen);
    if (!s) return NULL;
    for (long i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= s->total || (i > 0 && idx[i] <= idx[i - 1])) {
            ds_fail(err, errlen, "%s: /%s: subset index %ld out of order or range", path, split, idx[i]);
            image_shard_close(s);
            return NULL;
        }
    free(s->images);
    free(s->labels);
    free(s->order);
    s->rank = rank;
    s->size = n;
    s->begin = 0;
    opener o = {path, err, errlen};
    char dpath[512];
    snprintf(dpath, sizeof dpath, "/%s/images", split);
    int rc = alloc_shard(s, &o, dpath);
    s->index = malloc(((size_t)n + 1) * sizeof *s->index);
    if (rc == 0 && !s->index) rc = ds_fail(err, errlen, "%s: out of memory", path);
    if (rc == 0) memcpy(s->index, idx, (size_t)n * sizeof *idx);
    if (rc == 0) {
        h5_quiet q;
        h5_quiet_begin(&q);
        hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        rc = file < 0 ? ds_fail(err, errlen, "%s: cannot open as HDF5", path)
                      : read_subset(&o, file, dpath, idx, n, s->images);
        snprintf(dpath, sizeof dpath, "/%s/labels", split);
        if (rc == 0) rc = read_subset(&o, file, dpath, idx, n, s->labels);
        if (file >= 0) H5Fclose(file);
        h5_quiet_end(&q);
    }
    if (rc != 0) {
        image_shard_close(s);
        return NULL;
    }
    return s;
}
