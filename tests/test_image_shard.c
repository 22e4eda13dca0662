/* image_shard: balanced disjoint shards that cover the split, read from the rank's own
 * hyperslab only; per-epoch shuffles that are reproducible permutations; clear errors. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "image_shard.h"
#include "mnist_idx.h"
#include "tokens.h"

static char tmp[256]; /* this test's scratch directory; each test runs in its own process */


static void setup(void) {
    cr_assert_not_null(test_mkdtemp(tmp, sizeof tmp, "shard"));
}

static void teardown(void) { test_rm_tree(tmp); }

TestSuite(shard, .init = setup, .fini = teardown);

/* The shipped MNIST converted into this test's directory. */
static pathbuf mnist_h5(void) {
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    pathbuf idx = path_join(src ? src : ".", "data/mnist"), out = path_join(tmp, "mnist.h5");
    char err[512];
    cr_assert_eq(prepare_mnist(idx.s, out.s, err, sizeof err), 0, "%s", err);
    return out;
}

/* The whole training split as the idx reader sees it. */
static void read_idx_train(uint8_t **px, uint8_t **lab, int *n) {
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    pathbuf dir = path_join(src ? src : ".", "data/mnist");
    int r, c, nl;
    char err[512];
    cr_assert_eq(idx_read_images(path_join(dir.s, "train-images-idx3-ubyte.gz").s, px, n, &r, &c, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(idx_read_labels(path_join(dir.s, "train-labels-idx1-ubyte.gz").s, lab, &nl, err, sizeof err), 0, "%s",
                 err);
}

static image_shard *open_ok(const char *path, const char *split, int rank, int world) {
    char err[512];
    image_shard *s = image_shard_open(path, split, rank, world, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    return s;
}

/* ---- the partition ------------------------------------------------------------------ */

Test(shard, partition_is_balanced) {
    const long totals[] = {0, 1, 2, 5, 7, 10, 999, 1000, 8000, 60001};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++)
        for (int w = 1; w <= 9; w++) {
            long N = totals[t], q = N / w;
            cr_assert_eq(shard_begin(0, w, N), 0);
            cr_assert_eq(shard_begin(w, w, N), N);
            for (int r = 0; r < w; r++) {
                long size = shard_begin(r + 1, w, N) - shard_begin(r, w, N);
                cr_assert(size == q || size == q + 1, "N=%ld W=%d rank %d: size %ld", N, w, r, size);
            }
        }
    /* no overflow where rank * total would not fit in a long */
    long big = 0x7fffffffffffff00L;
    cr_expect_eq(shard_begin(1, 2, big), big / 2);
}

/* Every rank of every world size: sizes within one, disjoint, covering, and the bytes are
 * those the idx reader gives for the same global index. */
Test(shard, shards_cover_the_split, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    uint8_t *px, *lab;
    int n;
    read_idx_train(&px, &lab, &n);
    const size_t ex = 28 * 28;
    uint8_t *img = malloc((size_t)n * ex), *l = malloc((size_t)n), *seen = malloc((size_t)n);
    long *gi = malloc((size_t)n * sizeof *gi);
    for (int w = 1; w <= 3; w++) {
        memset(seen, 0, (size_t)n);
        long min = n, max = 0;
        for (int r = 0; r < w; r++) {
            image_shard *s = open_ok(h5.s, "train", r, w);
            long size = image_shard_size(s);
            cr_assert_eq(image_shard_total(s), n);
            cr_assert_eq(image_shard_begin(s), shard_begin(r, w, n));
            cr_assert(image_shard_height(s) == 28 && image_shard_width(s) == 28 && image_shard_channels(s) == 1);
            image_shard_get(s, 0, (int)size, img, l, gi);
            for (long i = 0; i < size; i++) {
                cr_assert_eq(gi[i], image_shard_begin(s) + i, "unshuffled order is not file order");
                cr_assert_eq(seen[gi[i]]++, 0, "W=%d: example %ld in two shards", w, gi[i]);
                cr_assert_eq(memcmp(img + i * ex, px + gi[i] * ex, ex), 0, "W=%d: pixels of %ld differ", w, gi[i]);
                cr_assert_eq(l[i], lab[gi[i]], "W=%d: label of %ld differs", w, gi[i]);
            }
            min = size < min ? size : min;
            max = size > max ? size : max;
            image_shard_close(s);
        }
        for (int i = 0; i < n; i++) cr_assert_eq(seen[i], 1, "W=%d: example %d in no shard", w, i);
        cr_expect_leq(max - min, 1, "W=%d: sizes %ld..%ld", w, min, max);
    }
    free(img), free(l), free(seen), free(gi), free(px), free(lab);
}

Test(shard, test_split_uneven, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    const long want[3] = {666, 667, 667}; /* 2000 / 3 */
    for (int r = 0; r < 3; r++) {
        image_shard *s = open_ok(h5.s, "test", r, 3);
        cr_expect_eq(image_shard_total(s), 2000);
        cr_expect_eq(image_shard_size(s), want[r], "rank %d: %ld", r, image_shard_size(s));
        image_shard_close(s);
    }
}

/* ---- shuffling ------------------------------------------------------------------------- */

static void epoch_order(image_shard *s, uint64_t seed, long epoch, int shuffle, long *gi) {
    image_shard_set_epoch(s, seed, epoch, shuffle);
    image_shard_get(s, 0, (int)image_shard_size(s), NULL, NULL, gi);
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

Test(shard, shuffle_is_a_reproducible_permutation, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    image_shard *a = open_ok(h5.s, "train", 1, 3), *b = open_ok(h5.s, "train", 1, 3);
    long n = image_shard_size(a), begin = image_shard_begin(a);
    long *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);

    epoch_order(a, 42, 3, 1, x);
    epoch_order(b, 42, 3, 1, y);
    cr_expect_eq(memcmp(x, y, n * sizeof *x), 0, "same (seed, epoch, rank), different order");

    /* an epoch's order does not depend on the epochs set before it (resume) */
    epoch_order(b, 42, 1, 1, y);
    epoch_order(b, 42, 2, 1, y);
    epoch_order(b, 42, 3, 1, y);
    cr_expect_eq(memcmp(x, y, n * sizeof *x), 0, "order depends on history");

    epoch_order(b, 42, 4, 1, y);
    cr_expect_neq(memcmp(x, y, n * sizeof *x), 0, "different epoch, same order");
    epoch_order(b, 43, 3, 1, y);
    cr_expect_neq(memcmp(x, y, n * sizeof *x), 0, "different seed, same order");

    for (long e = 0; e < 3; e++) {
        epoch_order(a, 42, e, 1, x);
        long moved = 0;
        for (long i = 0; i < n; i++) moved += x[i] != begin + i;
        cr_expect_gt(moved, n / 2, "epoch %ld barely shuffled", e);
        qsort(x, (size_t)n, sizeof *x, cmp_long);
        for (long i = 0; i < n; i++) cr_assert_eq(x[i], begin + i, "epoch %ld is not a permutation", e);
    }
    epoch_order(a, 42, 5, 0, x);
    for (long i = 0; i < n; i++) cr_assert_eq(x[i], begin + i, "shuffle=0 is not file order");
    free(x), free(y);
    image_shard_close(a);
    image_shard_close(b);
}

Test(shard, shuffled_examples_keep_their_labels, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    uint8_t *px, *lab;
    int n;
    read_idx_train(&px, &lab, &n);
    image_shard *s = open_ok(h5.s, "train", 0, 2);
    image_shard_set_epoch(s, 7, 0, 1);
    enum { K = 64 };
    uint8_t img[K * 784], l[K];
    long gi[K];
    image_shard_get(s, 100, K, img, l, gi);
    for (int i = 0; i < K; i++) {
        cr_assert_eq(memcmp(img + i * 784, px + gi[i] * 784, 784), 0);
        cr_assert_eq(l[i], lab[gi[i]]);
    }
    image_shard_close(s);
    free(px), free(lab);
}

/* The order is part of a run's reproducibility across versions and machines: pinned. */
Test(shard, shuffle_is_pinned, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    image_shard *s = open_ok(h5.s, "train", 0, 1);
    long gi[5];
    const long want[5] = {5439, 6276, 701, 3242, 1988};
    image_shard_set_epoch(s, 1, 0, 1);
    image_shard_get(s, 0, 5, NULL, NULL, gi);
    cr_expect_arr_eq(gi, want, sizeof want, "the shuffle algorithm changed: resumed runs would see other data");
    image_shard_close(s);
    /* a later epoch on another rank: the epoch and the rank enter the stream too */
    s = open_ok(h5.s, "train", 1, 2);
    const long want_r1e3[5] = {6484, 6713, 7211, 6075, 6654};
    image_shard_set_epoch(s, 42, 3, 1);
    image_shard_get(s, 0, 5, NULL, NULL, gi);
    cr_expect_arr_eq(gi, want_r1e3, sizeof want_r1e3, "the shuffle of rank 1, epoch 3 changed");
    image_shard_close(s);
}

/* Ranks draw different streams from the same seed and epoch. */
Test(shard, ranks_shuffle_differently, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    image_shard *a = open_ok(h5.s, "train", 0, 2), *b = open_ok(h5.s, "train", 1, 2);
    long n = image_shard_size(a), x[4000], y[4000];
    cr_assert_eq(n, 4000);
    epoch_order(a, 42, 0, 1, x);
    epoch_order(b, 42, 0, 1, y);
    long same = 0;
    for (long i = 0; i < n; i++) same += x[i] - image_shard_begin(a) == y[i] - image_shard_begin(b);
    cr_expect_lt(same, 20, "ranks 0 and 1 use the same permutation");
    image_shard_close(a);
    image_shard_close(b);
}

/* ---- synthetic files: shapes, errors, and proof that only the hyperslab is read ------- */

static void add_dataset(hid_t file, const char *path, hid_t type, int rank, const hsize_t *dims, const void *data,
                        hsize_t chunk0, int checksum) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (chunk0) {
        hsize_t chunk[4];
        memcpy(chunk, dims, (size_t)rank * sizeof *dims);
        chunk[0] = chunk0;
        cr_assert_geq(H5Pset_chunk(dcpl, rank, chunk), 0);
        if (checksum) cr_assert_geq(H5Pset_fletcher32(dcpl), 0);
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    cr_assert_geq(d, 0, "cannot create %s", path);
    if (data) cr_assert_geq(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
}

/* N examples of H x W x C whose every byte encodes (example, offset) */
static uint8_t *pattern(long n, size_t ex) {
    uint8_t *p = malloc((size_t)n * ex);
    for (long i = 0; i < n; i++)
        for (size_t k = 0; k < ex; k++) p[i * ex + k] = (uint8_t)(i * 31 + k);
    return p;
}

Test(shard, rank3_images_and_rgb) {
    pathbuf p = path_join(tmp, "shapes.h5");
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t *gray = pattern(10, 5 * 6), *rgb = pattern(10, 4 * 4 * 3), lab[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    hsize_t g[3] = {10, 5, 6}, c[4] = {10, 4, 4, 3}, l[1] = {10};
    add_dataset(f, "/gray/images", H5T_STD_U8LE, 3, g, gray, 0, 0);
    add_dataset(f, "/gray/labels", H5T_STD_U8LE, 1, l, lab, 0, 0);
    add_dataset(f, "/rgb/images", H5T_STD_U8LE, 4, c, rgb, 3, 0);
    add_dataset(f, "/rgb/labels", H5T_STD_U8LE, 1, l, lab, 0, 0);
    H5Fclose(f);

    image_shard *s = open_ok(p.s, "gray", 1, 2);
    cr_expect(image_shard_height(s) == 5 && image_shard_width(s) == 6 && image_shard_channels(s) == 1);
    uint8_t img[5 * 48], labels[5];
    image_shard_get(s, 0, 5, img, labels, NULL);
    cr_expect_eq(memcmp(img, gray + 5 * 30, 5 * 30), 0);
    cr_expect_eq(labels[0], 5);
    image_shard_close(s);

    s = open_ok(p.s, "rgb", 2, 3); /* examples 6..9 */
    cr_expect(image_shard_height(s) == 4 && image_shard_width(s) == 4 && image_shard_channels(s) == 3);
    cr_expect_eq(image_shard_size(s), 4);
    image_shard_get(s, 0, 4, img, labels, NULL);
    cr_expect_eq(memcmp(img, rgb + 6 * 48, 4 * 48), 0);
    cr_expect_eq(labels[3], 9);
    image_shard_close(s);
    free(gray), free(rgb);
}

/* More ranks than examples: some shards are empty, and that is not an error. */
Test(shard, empty_shards) {
    pathbuf p = path_join(tmp, "tiny.h5");
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t px[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, lab[2] = {3, 4};
    hsize_t d[3] = {2, 2, 2}, l[1] = {2};
    add_dataset(f, "/train/images", H5T_STD_U8LE, 3, d, px, 0, 0);
    add_dataset(f, "/train/labels", H5T_STD_U8LE, 1, l, lab, 0, 0);
    H5Fclose(f);
    long total = 0;
    for (int r = 0; r < 3; r++) {
        image_shard *s = open_ok(p.s, "train", r, 3);
        image_shard_set_epoch(s, 1, 0, 1);
        total += image_shard_size(s);
        image_shard_close(s);
    }
    cr_expect_eq(total, 2);
}

/* Every chunk carries a Fletcher32 checksum; corrupting the last rank's chunk breaks that
 * rank only, which shows that the others never read it. */
Test(shard, reads_only_its_hyperslab) {
    pathbuf p = path_join(tmp, "chunks.h5");
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t *px = pattern(30, 16), lab[30] = {0};
    hsize_t d[4] = {30, 4, 4, 1}, l[1] = {30};
    add_dataset(f, "/train/images", H5T_STD_U8LE, 4, d, px, 10, 1);
    add_dataset(f, "/train/labels", H5T_STD_U8LE, 1, l, lab, 10, 1);
    H5Fclose(f);

    f = H5Fopen(p.s, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/train/images", H5P_DEFAULT);
    hsize_t coord[4] = {20, 0, 0, 0}, size;
    haddr_t addr;
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info_by_coord(ds, coord, &mask, &addr, &size), 0);
    H5Dclose(ds);
    H5Fclose(f);
    int fd = open(p.s, O_RDWR);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, (off_t)addr + 3), 1);
    byte ^= 0xff;
    cr_assert_eq(pwrite(fd, &byte, 1, (off_t)addr + 3), 1);
    close(fd);

    for (int r = 0; r < 2; r++) {
        image_shard *s = open_ok(p.s, "train", r, 3);
        uint8_t img[10 * 16];
        image_shard_get(s, 0, 10, img, NULL, NULL);
        cr_expect_eq(memcmp(img, px + r * 160, 160), 0, "rank %d read wrong pixels", r);
        image_shard_close(s);
    }
    char err[512] = "";
    cr_expect_null(image_shard_open(p.s, "train", 2, 3, err, sizeof err), "the corruption went unnoticed");
    cr_expect_not_null(strstr(err, "/train/images: checksum mismatch (file corrupted) in examples 20..29"), "%s",
                       err);
    free(px);
}

/* ---- checksums: the files that prepare writes detect corruption --------------------------- */

/* Flips one byte in the middle of the chunk of dpath that holds element `coord0` of the
 * first dimension. */
static void corrupt_chunk(const char *path, const char *dpath, hsize_t coord0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, dpath, H5P_DEFAULT);
    cr_assert_geq(ds, 0, "%s missing", dpath);
    hsize_t coord[4] = {coord0, 0, 0, 0}, size;
    haddr_t addr;
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info_by_coord(ds, coord, &mask, &addr, &size), 0);
    H5Dclose(ds);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte;
    off_t at = (off_t)(addr + size / 2);
    cr_assert_eq(pread(fd, &byte, 1, at), 1);
    byte ^= 0x5a;
    cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
    close(fd);
}

static void expect_corrupt(const char *path, const char *split, int rank, int world, const char *dpath) {
    char err[512] = "", want[1200];
    image_shard *s = image_shard_open(path, split, rank, world, err, sizeof err);
    cr_expect_null(s, "rank %d of %d: the corruption of %s went unnoticed", rank, world, dpath);
    if (s) image_shard_close(s);
    snprintf(want, sizeof want, "%s: %s: checksum mismatch (file corrupted)", path, dpath);
    cr_expect_not_null(strstr(err, want), "lacks '%s': %s", want, err);
    cr_expect_null(strchr(err, '\n'), "not one line: %s", err);
}

Test(shard, prepared_images_are_checksummed, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    corrupt_chunk(h5.s, "/train/images", 6000); /* rank 1 of 2 holds 4000..7999 */
    image_shard *s = open_ok(h5.s, "train", 0, 2);
    image_shard_close(s);
    expect_corrupt(h5.s, "train", 1, 2, "/train/images");
    expect_corrupt(h5.s, "train", 0, 1, "/train/images");
    /* and through the resume path's subset reader */
    long idx[3] = {10, 6000, 7000};
    char err[512] = "";
    cr_expect_null(image_shard_open_subset(h5.s, "train", 0, idx, 3, err, sizeof err));
    cr_expect_not_null(strstr(err, "/train/images: checksum mismatch (file corrupted)"), "%s", err);
}

Test(shard, prepared_labels_are_checksummed, .timeout = 60) {
    pathbuf h5 = mnist_h5();
    corrupt_chunk(h5.s, "/test/labels", 0);
    expect_corrupt(h5.s, "test", 0, 1, "/test/labels");
}

/* Files written before the filter existed (no Fletcher32) read as they always did. */
Test(shard, unchecksummed_files_still_read) {
    pathbuf p = path_join(tmp, "old.h5");
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t *px = pattern(20, 9), lab[20] = {0};
    hsize_t d[4] = {20, 3, 3, 1}, l[1] = {20};
    add_dataset(f, "/train/images", H5T_STD_U8LE, 4, d, px, 8, 0);
    add_dataset(f, "/train/labels", H5T_STD_U8LE, 1, l, lab, 8, 0);
    H5Fclose(f);
    image_shard *s = open_ok(p.s, "train", 0, 1);
    uint8_t img[20 * 9];
    image_shard_get(s, 0, 20, img, NULL, NULL);
    cr_expect_eq(memcmp(img, px, sizeof img), 0);
    image_shard_close(s);
    free(px);
}

/* The token reader reports a checksum failure the same way (its reads are lazy, so the
 * error comes from the read, not the open). Here because both readers share the check. */
Test(shard, prepared_tokens_are_checksummed, .timeout = 60) {
    pathbuf txt = path_join(tmp, "in.txt"), h5 = path_join(tmp, "tok.h5");
    FILE *f = fopen(txt.s, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 200000; i++) fputc('a' + i % 26, f);
    cr_assert_eq(fclose(f), 0);
    char err[512] = "";
    cr_assert_eq(prepare_text(txt.s, h5.s, "char", 0.1, err, sizeof err), 0, "%s", err);
    corrupt_chunk(h5.s, "/train/tokens", 70000); /* the second chunk of 65536 tokens */
    token_shard *t = token_shard_open(h5.s, "train", 0, 1, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    int32_t ids[100];
    cr_expect_eq(token_shard_read(t, 0, 100, ids, err, sizeof err), 0, "an intact chunk failed: %s", err);
    cr_expect_eq(token_shard_read(t, 70000, 100, ids, err, sizeof err), TOKEN_READ_BAD_DATA,
                 "the corruption went unnoticed, or was not reported as bad data");
    char want[1200];
    snprintf(want, sizeof want, "%s: /train/tokens: checksum mismatch (file corrupted)", h5.s);
    cr_expect_not_null(strstr(err, want), "lacks '%s': %s", want, err);
    token_shard_close(t);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void expect_open_error(const char *path, const char *split, const char *phrase) {
    char err[512] = "";
    image_shard *s = image_shard_open(path, split, 0, 1, err, sizeof err);
    cr_expect_null(s, "%s: opened", path);
    if (s) image_shard_close(s);
    cr_expect_not_null(strstr(err, path), "message does not name the file: %s", err);
    cr_expect_not_null(strstr(err, phrase), "message lacks '%s': %s", phrase, err);
    cr_expect_null(strchr(err, '\n'), "not one line: %s", err);
}

/* a file with /train/labels (N=4) and, if img_type >= 0, /train/images of that type and rank */
static pathbuf bad_file(const char *name, hid_t img_type, int img_rank, hid_t lab_type, long nlab) {
    pathbuf p = path_join(tmp, name);
    hid_t f = H5Fcreate(p.s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d[4] = {4, 3, 3, 1}, l[1] = {(hsize_t)nlab};
    if (img_type >= 0) add_dataset(f, "/train/images", img_type, img_rank, d, NULL, 0, 0);
    add_dataset(f, "/train/labels", lab_type, 1, l, NULL, 0, 0);
    H5Fclose(f);
    return p;
}

Test(shard, missing_images) {
    pathbuf p = bad_file("noimages.h5", H5I_INVALID_HID, 0, H5T_STD_U8LE, 4);
    expect_open_error(p.s, "train", "/train/images: not found");
    expect_open_error(p.s, "valid", "/valid/images: not found");
}

Test(shard, wrong_image_dtype) {
    pathbuf p = bad_file("float.h5", H5T_IEEE_F32LE, 4, H5T_STD_U8LE, 4);
    expect_open_error(p.s, "train", "/train/images: expected uint8, got float32");
    p = bad_file("int16.h5", H5T_STD_I16LE, 4, H5T_STD_U8LE, 4);
    expect_open_error(p.s, "train", "/train/images: expected uint8, got int16");
}

Test(shard, wrong_image_rank) {
    pathbuf p = bad_file("rank2.h5", H5T_STD_U8LE, 2, H5T_STD_U8LE, 4);
    expect_open_error(p.s, "train", "/train/images: expected rank 3 or 4");
}

Test(shard, bad_labels) {
    pathbuf p = bad_file("labcount.h5", H5T_STD_U8LE, 4, H5T_STD_U8LE, 5);
    expect_open_error(p.s, "train", "/train/labels: holds 5 labels: expected 4");
    p = bad_file("labtype.h5", H5T_STD_U8LE, 4, H5T_STD_I32LE, 4);
    expect_open_error(p.s, "train", "/train/labels: expected uint8, got int32");
}

Test(shard, not_a_file_or_not_hdf5) {
    expect_open_error(path_join(tmp, "missing.h5").s, "train", "cannot open: No such file");
    pathbuf p = path_join(tmp, "text.h5");
    FILE *f = fopen(p.s, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    expect_open_error(p.s, "train", "cannot open as HDF5");
    expect_open_error(tmp, "train", "is a directory");
}

Test(shard, bad_rank) {
    pathbuf p = bad_file("any.h5", H5T_STD_U8LE, 4, H5T_STD_U8LE, 4);
    char err[512] = "";
    cr_expect_null(image_shard_open(p.s, "train", 2, 2, err, sizeof err));
    cr_expect_not_null(strstr(err, "rank 2 of world 2"), "%s", err);
}
