/* idx readers and `prepare mnist`: the shipped data converts faithfully, gzipped or plain,
 * and every broken input fails with one line naming the file, leaving no output behind. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"
#include "mnist_idx.h"

static char tmp[256]; /* this test's scratch directory; each test runs in its own process */


static void setup(void) {
    cr_assert_not_null(test_mkdtemp(tmp, sizeof tmp, "mnist"));
}

static void teardown(void) { test_rm_tree(tmp); }

TestSuite(mnist, .init = setup, .fini = teardown);

static const char *shipped_dir(void) {
    static char dir[1024];
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/data/mnist", src ? src : ".");
    return dir;
}

/* DIR/NAME as a value, so that calls nest and no buffer is shared between them */
static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* entries of dir whose name contains needle */
static int count_named(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *data, size_t len, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(data, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
    }
}

static void put_be32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* An idx file: magic, ndims big-endian dims, then payload_len bytes of payload (which may
 * differ from what the dims announce, to make broken files). */
static void write_idx(const char *path, uint32_t magic, int ndims, const uint32_t *dims,
                      const uint8_t *payload, size_t payload_len, int gz) {
    size_t head = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(head + payload_len + 1);
    put_be32(buf, magic);
    for (int d = 0; d < ndims; d++) put_be32(buf + 4 + 4 * d, dims[d]);
    if (payload_len) memcpy(buf + head, payload, payload_len);
    write_file(path, buf, head + payload_len, gz);
    free(buf);
}

/* A small valid idx directory: 3 train and 2 test images of 28x28, labels 0..9. */
enum { SMALL_TRAIN = 3, SMALL_TEST = 2, PX = 28 * 28 };

static void make_small_split(const char *dir, const char *prefix, uint32_t n, int gz) {
    uint8_t *px = malloc(n * PX), lab[16];
    for (uint32_t i = 0; i < n * PX; i++) px[i] = (uint8_t)(i * 7 + 3);
    for (uint32_t i = 0; i < n; i++) lab[i] = (uint8_t)(i % 10);
    char name[128];
    uint32_t idims[3] = {n, 28, 28}, ldims[1] = {n};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    write_idx(path_join(dir, name).s, 0x803, 3, idims, px, n * PX, gz);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    write_idx(path_join(dir, name).s, 0x801, 1, ldims, lab, n, gz);
    free(px);
}

static pathbuf make_small_dir(int gz) {
    pathbuf dir = path_join(tmp, "idx");
    cr_assert_eq(mkdir(dir.s, 0755), 0);
    make_small_split(dir.s, "train", SMALL_TRAIN, gz);
    make_small_split(dir.s, "t10k", SMALL_TEST, gz);
    return dir;
}

/* ---- reading the HDF5 output back ---------------------------------------------------- */

static int64_t read_count(hid_t file, const char *group) {
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    cr_assert_geq(g, 0, "%s missing", group);
    hid_t a = H5Aopen(g, "count", H5P_DEFAULT);
    cr_assert_geq(a, 0, "%s has no count attribute", group);
    int64_t v = -1;
    cr_assert_geq(H5Aread(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    H5Gclose(g);
    return v;
}

static void expect_str_attr(hid_t file, const char *name, const char *want) {
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    cr_assert_geq(a, 0, "root attribute %s missing", name);
    hid_t t = H5Aget_type(a);
    cr_assert(H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0, "%s is not a string", name);
    char *got = NULL;
    cr_assert_geq(H5Aread(a, t, &got), 0);
    cr_expect_str_eq(got, want, "attribute %s", name);
    H5free_memory(got);
    H5Tclose(t);
    H5Aclose(a);
}

/* Reads a whole uint8 dataset after checking its type and shape. */
static uint8_t *read_u8(hid_t file, const char *path, int rank, const hsize_t *want) {
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    cr_assert_geq(d, 0, "%s missing", path);
    hid_t t = H5Dget_type(d), s = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    cr_assert(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE,
              "%s is not uint8", path);
    cr_assert_eq(H5Pget_layout(dcpl), H5D_CHUNKED, "%s is not chunked", path);
    unsigned flags, conf;
    size_t nvals = 0;
    cr_expect_geq(H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nvals, NULL, 0, NULL, &conf), 0,
                  "%s has no Fletcher32 checksum", path);
    hsize_t dims[4] = {0};
    cr_assert_eq(H5Sget_simple_extent_ndims(s), rank, "%s rank", path);
    H5Sget_simple_extent_dims(s, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        cr_assert_eq(dims[i], want[i], "%s dim %d: %llu", path, i, (unsigned long long)dims[i]);
        n *= dims[i];
    }
    uint8_t *buf = malloc(n);
    cr_assert_geq(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
    return buf;
}

/* The output's split equals what the idx readers return for the same files. */
static void expect_split(hid_t file, const char *group, const char *idx_dir, const char *prefix,
                         const char *suffix, int n_want) {
    char name[128], dpath[64];
    uint8_t *px, *lab;
    int n, rows, cols, nl;
    char err[512];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, suffix);
    cr_assert_eq(idx_read_images(path_join(idx_dir, name).s, &px, &n, &rows, &cols, err, sizeof err), 0, "%s", err);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, suffix);
    cr_assert_eq(idx_read_labels(path_join(idx_dir, name).s, &lab, &nl, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, n_want);
    cr_assert_eq(read_count(file, group), n_want);
    hsize_t idims[4] = {(hsize_t)n, 28, 28, 1}, ldims[1] = {(hsize_t)n};
    snprintf(dpath, sizeof dpath, "/%s/images", group);
    uint8_t *h5px = read_u8(file, dpath, 4, idims);
    snprintf(dpath, sizeof dpath, "/%s/labels", group);
    uint8_t *h5lab = read_u8(file, dpath, 1, ldims);
    cr_expect_eq(memcmp(h5px, px, (size_t)n * PX), 0, "/%s/images differ from the idx pixels", group);
    cr_expect_eq(memcmp(h5lab, lab, (size_t)n), 0, "/%s/labels differ from the idx labels", group);
    free(h5px);
    free(h5lab);
    free(px);
    free(lab);
}

static void expect_converted(const char *out, const char *idx_dir, const char *suffix) {
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    expect_str_attr(f, "format", "dtrain-images-v1");
    expect_str_attr(f, "source", idx_dir);
    expect_split(f, "train", idx_dir, "train", suffix, 8000);
    expect_split(f, "test", idx_dir, "t10k", suffix, 2000);
    H5Fclose(f);
    cr_expect_eq(count_named(tmp, ".tmp."), 0, "a temporary file was left behind");
}

/* ---- the readers ---------------------------------------------------------------------- */

Test(mnist, reads_shipped_gz) {
    uint8_t *px, *lab;
    int n, rows, cols, nl;
    char err[512];
    cr_assert_eq(idx_read_images(path_join(shipped_dir(), "train-images-idx3-ubyte.gz").s, &px, &n, &rows, &cols,
                                 err, sizeof err), 0, "%s", err);
    cr_expect(n == 8000 && rows == 28 && cols == 28);
    cr_assert_eq(idx_read_labels(path_join(shipped_dir(), "train-labels-idx1-ubyte.gz").s, &lab, &nl, err, sizeof err),
                 0, "%s", err);
    cr_expect_eq(nl, 8000);
    /* the shipped subset's first labels, and a pixel range that MNIST must have */
    const uint8_t first[5] = {1, 2, 8, 3, 4};
    cr_expect_eq(memcmp(lab, first, 5), 0);
    int max = 0;
    for (int i = 0; i < PX; i++) max = px[i] > max ? px[i] : max;
    cr_expect(max > 200, "first image looks blank");
    free(px);
    free(lab);
}

Test(mnist, plain_and_gz_read_the_same) {
    pathbuf dir_path = make_small_dir(0);
    const char *dir = dir_path.s;
    uint8_t *a, *b;
    int n, r, c;
    char err[512];
    cr_assert_eq(idx_read_images(path_join(dir, "train-images-idx3-ubyte").s, &a, &n, &r, &c, err, sizeof err), 0,
                 "%s", err);
    cr_expect(n == SMALL_TRAIN && r == 28 && c == 28);
    /* a gzipped file under a name without .gz: detection is by content */
    uint32_t dims[3] = {SMALL_TRAIN, 28, 28};
    write_idx(path_join(tmp, "gz-without-suffix").s, 0x803, 3, dims, a, SMALL_TRAIN * PX, 1);
    cr_assert_eq(idx_read_images(path_join(tmp, "gz-without-suffix").s, &b, &n, &r, &c, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(memcmp(a, b, SMALL_TRAIN * PX), 0);
    free(a);
    free(b);
}

/* A reader error is one line that names the file and contains the phrase. */
static void expect_read_error(const char *path, int images, const char *phrase) {
    uint8_t *data = NULL;
    int n, r, c;
    char err[512] = "";
    int rc = images ? idx_read_images(path, &data, &n, &r, &c, err, sizeof err)
                    : idx_read_labels(path, &data, &n, err, sizeof err);
    cr_expect_eq(rc, -1, "%s: accepted", path);
    cr_expect_null(data);
    cr_expect_not_null(strstr(err, path), "message does not name the file: %s", err);
    cr_expect_not_null(strstr(err, phrase), "message lacks '%s': %s", phrase, err);
    cr_expect_null(strchr(err, '\n'), "message is not one line: %s", err);
}

Test(mnist, reader_errors) {
    uint8_t px[2 * PX] = {0};
    uint32_t dims[3] = {2, 28, 28};
    pathbuf p_path = path_join(tmp, "f");
    const char *p = p_path.s;
    write_idx(p, 0x803, 3, dims, px, 2 * PX - 100, 0);
    expect_read_error(p, 1, "truncated: expected 1568 bytes of pixels after the header, got 1468");
    write_idx(p, 0x803, 3, dims, px, 2 * PX - 100, 1);
    expect_read_error(p, 1, "truncated");
    write_idx(p, 0x803, 3, dims, px, 2 * PX, 0);
    cr_assert_eq(truncate(p, 10), 0); /* cut inside the header */
    expect_read_error(p, 1, "truncated header");
    uint8_t *big = calloc(1, 2 * PX + 1);
    write_idx(p, 0x803, 3, dims, big, 2 * PX + 1, 0);
    expect_read_error(p, 1, "trailing data");
    write_idx(p, 0x803, 3, dims, big, 2 * PX + 1, 1);
    expect_read_error(p, 1, "trailing data");
    free(big);
    write_idx(p, 0x801, 1, dims, px, 2, 0);
    expect_read_error(p, 1, "bad magic number 0x00000801: expected 0x00000803");
    write_idx(p, 0x803, 3, dims, px, 2 * PX, 0);
    expect_read_error(p, 0, "bad magic number 0x00000803: expected 0x00000801");
    expect_read_error(path_join(tmp, "missing").s, 1, "cannot open");
}

/* ---- gzip streams must be whole ------------------------------------------------------ */

static uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A valid gzipped idx3 file of 2 images (path "ok.gz"), as bytes to damage. */
static uint8_t *small_gz(size_t *len) {
    uint8_t px[2 * PX];
    for (int i = 0; i < 2 * PX; i++) px[i] = (uint8_t)(i * 13);
    uint32_t dims[3] = {2, 28, 28};
    write_idx(path_join(tmp, "ok.gz").s, 0x803, 3, dims, px, sizeof px, 1);
    uint8_t *b = read_bytes(path_join(tmp, "ok.gz").s, len);
    uint8_t *data;
    int n, r, c;
    char err[512];
    cr_assert_eq(idx_read_images(path_join(tmp, "ok.gz").s, &data, &n, &r, &c, err, sizeof err), 0, "%s", err);
    free(data);
    return b;
}

/* gzread took a stream cut inside (or just before) its 8-byte trailer for a clean end */
Test(mnist, gzip_trailer_cut) {
    size_t len;
    uint8_t *gz = small_gz(&len);
    pathbuf p = path_join(tmp, "cut.gz");
    for (size_t cut = 1; cut <= 8; cut++) {
        write_file(p.s, gz, len - cut, 0);
        expect_read_error(p.s, 1, "truncated gzip stream (missing CRC trailer)");
    }
    /* a few bytes more: the end of the deflate data goes too */
    for (size_t cut = 9; cut <= 16; cut++) {
        write_file(p.s, gz, len - cut, 0);
        expect_read_error(p.s, 1, "truncated");
    }
    free(gz);
}

Test(mnist, gzip_trailer_mismatch) {
    size_t len;
    uint8_t *gz = small_gz(&len);
    pathbuf p = path_join(tmp, "bad.gz");
    gz[len - 8] ^= 0x01; /* CRC32 */
    write_file(p.s, gz, len, 0);
    expect_read_error(p.s, 1, "gzip CRC mismatch");
    gz[len - 8] ^= 0x01;
    gz[len - 4] ^= 0x01; /* ISIZE, the length mod 2^32 */
    write_file(p.s, gz, len, 0);
    expect_read_error(p.s, 1, "gzip length mismatch");
    gz[len - 4] ^= 0x01;
    gz[len / 2] ^= 0x55; /* the deflate data: caught by inflate or by the CRC, but caught */
    write_file(p.s, gz, len, 0);
    expect_read_error(p.s, 1, "");
    free(gz);
}

/* bytes after the last gzip member, even zeros: rejected, not skipped as gzread did */
Test(mnist, gzip_trailing_garbage) {
    size_t len;
    uint8_t *gz = small_gz(&len);
    uint8_t *longer = calloc(1, len + 16);
    memcpy(longer, gz, len);
    pathbuf p = path_join(tmp, "tail.gz");
    const size_t tails[] = {1, 2, 16};
    for (int i = 0; i < 3; i++) {
        write_file(p.s, longer, len + tails[i], 0);
        expect_read_error(p.s, 1, "trailing data after the end of the gzip stream");
    }
    memcpy(longer + len, "garbage!", 8);
    write_file(p.s, longer, len + 8, 0);
    expect_read_error(p.s, 1, "trailing data after the end of the gzip stream");
    /* a second member that holds more data: after the payload, as in a plain file */
    free(longer);
    longer = malloc(2 * len);
    memcpy(longer, gz, len);
    memcpy(longer + len, gz, len);
    write_file(p.s, longer, 2 * len, 0);
    expect_read_error(p.s, 1, "trailing data: expected the file to end after 1568 bytes of pixels");
    free(longer);
    free(gz);
}

/* gzip allows members to be concatenated (cat a.gz b.gz): the payload may span them */
Test(mnist, gzip_members_concatenated) {
    uint8_t raw[16 + 2 * PX];
    put_be32(raw, 0x803);
    put_be32(raw + 4, 2);
    put_be32(raw + 8, 28);
    put_be32(raw + 12, 28);
    for (int i = 0; i < 2 * PX; i++) raw[16 + i] = (uint8_t)(i * 5);
    size_t split = 100, alen, blen;
    write_file(path_join(tmp, "a.gz").s, raw, split, 1);
    write_file(path_join(tmp, "b.gz").s, raw + split, sizeof raw - split, 1);
    uint8_t *a = read_bytes(path_join(tmp, "a.gz").s, &alen), *b = read_bytes(path_join(tmp, "b.gz").s, &blen);
    uint8_t *both = malloc(alen + blen);
    memcpy(both, a, alen);
    memcpy(both + alen, b, blen);
    pathbuf p = path_join(tmp, "both.gz");
    write_file(p.s, both, alen + blen, 0);
    uint8_t *px;
    int n, r, c;
    char err[512];
    cr_assert_eq(idx_read_images(p.s, &px, &n, &r, &c, err, sizeof err), 0, "%s", err);
    cr_expect(n == 2 && r == 28 && c == 28);
    cr_expect_eq(memcmp(px, raw + 16, 2 * PX), 0);
    free(px), free(a), free(b), free(both);
}

Test(mnist, cut_gzip_stream) {
    /* the .gz file itself cut in half: zlib sees the stream end early */
    FILE *f = fopen(path_join(shipped_dir(), "t10k-images-idx3-ubyte.gz").s, "rb");
    cr_assert_not_null(f);
    static uint8_t buf[400000];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_file(path_join(tmp, "cut.gz").s, buf, len / 2, 0);
    expect_read_error(path_join(tmp, "cut.gz").s, 1, "truncated");
}

/* ---- prepare_mnist --------------------------------------------------------------------- */

Test(mnist, prepare_from_shipped_gz, .timeout = 60) {
    pathbuf out_path = path_join(tmp, "mnist.h5");
    const char *out = out_path.s;
    char err[512];
    cr_assert_eq(prepare_mnist(shipped_dir(), out, err, sizeof err), 0, "%s", err);
    expect_converted(out, shipped_dir(), ".gz");
}

static void gunzip(const char *src, const char *dst) {
    gzFile in = gzopen(src, "rb");
    FILE *out = fopen(dst, "wb");
    cr_assert(in && out);
    static uint8_t buf[1 << 16];
    int n;
    while ((n = gzread(in, buf, sizeof buf)) > 0) cr_assert_eq(fwrite(buf, 1, (size_t)n, out), (size_t)n);
    cr_assert_eq(n, 0);
    gzclose(in);
    cr_assert_eq(fclose(out), 0);
}

Test(mnist, prepare_from_plain_copies, .timeout = 60) {
    pathbuf dir_path = path_join(tmp, "plain");
    const char *dir = dir_path.s;
    cr_assert_eq(mkdir(dir, 0755), 0);
    const char *names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char gz[256];
        snprintf(gz, sizeof gz, "%s.gz", names[i]);
        gunzip(path_join(shipped_dir(), gz).s, path_join(dir, names[i]).s);
    }
    pathbuf out_path = path_join(tmp, "plain.h5");
    const char *out = out_path.s;
    char err[512];
    cr_assert_eq(prepare_mnist(dir, out, err, sizeof err), 0, "%s", err);
    expect_converted(out, dir, "");
    /* and the plain conversion holds the very bytes of the gzipped originals */
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    expect_split(f, "train", shipped_dir(), "train", ".gz", 8000);
    H5Fclose(f);
}

/* prepare fails with one line naming `file` and containing `phrase`, and leaves no output
 * and no temporary file. */
static void expect_prepare_error(const char *dir, const char *file, const char *phrase) {
    pathbuf out_path = path_join(tmp, "out.h5");
    const char *out = out_path.s;
    char err[512] = "";
    cr_assert_eq(prepare_mnist(dir, out, err, sizeof err), PREPARE_BAD_INPUT, "a broken %s was not reported as "
                 "bad input", file);
    cr_expect_not_null(strstr(err, file), "message does not name %s: %s", file, err);
    cr_expect_not_null(strstr(err, phrase), "message lacks '%s': %s", phrase, err);
    cr_expect_null(strchr(err, '\n'), "message is not one line: %s", err);
    cr_expect(!exists(out), "output exists after a failure");
    cr_expect_eq(count_named(tmp, ".tmp."), 0, "temporary file left behind");
}

Test(mnist, prepare_small_ok) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    char err[512];
    cr_assert_eq(prepare_mnist(dir, path_join(tmp, "small.h5").s, err, sizeof err), 0, "%s", err);
    hid_t f = H5Fopen(path_join(tmp, "small.h5").s, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_expect_eq(read_count(f, "train"), SMALL_TRAIN);
    cr_expect_eq(read_count(f, "test"), SMALL_TEST);
    H5Fclose(f);
}

Test(mnist, prepare_truncated_images) {
    pathbuf dir_path = make_small_dir(0);
    const char *dir = dir_path.s;
    uint8_t px[SMALL_TRAIN * PX] = {0};
    uint32_t dims[3] = {SMALL_TRAIN, 28, 28};
    write_idx(path_join(dir, "train-images-idx3-ubyte").s, 0x803, 3, dims, px, 100, 0);
    expect_prepare_error(dir, path_join(dir, "train-images-idx3-ubyte").s,
                         "truncated: expected 2352 bytes of pixels after the header, got 100");
}

Test(mnist, prepare_wrong_magic) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    uint8_t px[SMALL_TEST * PX] = {0};
    uint32_t dims[3] = {SMALL_TEST, 28, 28};
    write_idx(path_join(dir, "t10k-images-idx3-ubyte.gz").s, 0x804, 3, dims, px, sizeof px, 1);
    expect_prepare_error(dir, path_join(dir, "t10k-images-idx3-ubyte.gz").s, "bad magic number 0x00000804");
}

Test(mnist, prepare_label_count_mismatch) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    uint8_t lab[SMALL_TRAIN - 1] = {0};
    uint32_t dims[1] = {SMALL_TRAIN - 1};
    write_idx(path_join(dir, "train-labels-idx1-ubyte.gz").s, 0x801, 1, dims, lab, sizeof lab, 1);
    expect_prepare_error(dir, path_join(dir, "train-labels-idx1-ubyte.gz").s, "holds 2 labels: expected 3");
}

Test(mnist, prepare_missing_file) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    cr_assert_eq(unlink(path_join(dir, "t10k-labels-idx1-ubyte.gz").s), 0);
    expect_prepare_error(dir, path_join(dir, "t10k-labels-idx1-ubyte[.gz]").s, "not found");
}

Test(mnist, prepare_label_out_of_range) {
    pathbuf dir_path = make_small_dir(0);
    const char *dir = dir_path.s;
    uint8_t lab[SMALL_TEST] = {3, 10};
    uint32_t dims[1] = {SMALL_TEST};
    write_idx(path_join(dir, "t10k-labels-idx1-ubyte").s, 0x801, 1, dims, lab, sizeof lab, 0);
    expect_prepare_error(dir, path_join(dir, "t10k-labels-idx1-ubyte").s, "label 10 at index 1: expected 0..9");
}

Test(mnist, prepare_wrong_image_size) {
    pathbuf dir_path = make_small_dir(0);
    const char *dir = dir_path.s;
    uint8_t px[SMALL_TRAIN * 27 * 27] = {0};
    uint32_t dims[3] = {SMALL_TRAIN, 27, 27};
    write_idx(path_join(dir, "train-images-idx3-ubyte").s, 0x803, 3, dims, px, sizeof px, 0);
    expect_prepare_error(dir, path_join(dir, "train-images-idx3-ubyte").s, "27x27: expected 28x28");
}

/* the header is wrong about the size, not the payload short: say which */
Test(mnist, prepare_wrong_size_in_header) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    uint8_t px[SMALL_TEST * PX] = {0};
    uint32_t dims[3] = {SMALL_TEST, 32, 32};
    write_idx(path_join(dir, "t10k-images-idx3-ubyte.gz").s, 0x803, 3, dims, px, sizeof px, 1);
    expect_prepare_error(dir, path_join(dir, "t10k-images-idx3-ubyte.gz").s, "images are 32x32: expected 28x28");
}

Test(mnist, prepare_gz_and_plain_both_present) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    make_small_split(dir, "train", SMALL_TRAIN, 0);
    pathbuf gz = path_join(dir, "train-images-idx3-ubyte.gz"), plain = path_join(dir, "train-images-idx3-ubyte");
    char both[2200];
    snprintf(both, sizeof both, "%s and %s both exist", gz.s, plain.s);
    expect_prepare_error(dir, both, "expected one of them");
}

Test(mnist, prepare_unwritable_output) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    pathbuf out_path = path_join(tmp, "no-such-dir/out.h5");
    const char *out = out_path.s;
    char err[512] = "";
    cr_assert_eq(prepare_mnist(dir, out, err, sizeof err), PREPARE_FAILED, "not reported as a write failure");
    cr_expect_not_null(strstr(err, out), "message does not name the output: %s", err);
    cr_expect_null(strchr(err, '\n'), "message is not one line: %s", err);
}

/* a failure after the temporary file exists (here: the rename, onto a directory) */
Test(mnist, late_failure_removes_temporary) {
    pathbuf dir_path = make_small_dir(1);
    pathbuf out = path_join(tmp, "out.h5");
    cr_assert_eq(mkdir(out.s, 0755), 0);
    char err[512] = "";
    cr_assert_eq(prepare_mnist(dir_path.s, out.s, err, sizeof err), PREPARE_FAILED);
    cr_expect_not_null(strstr(err, out.s), "message does not name the output: %s", err);
    cr_expect_not_null(strstr(err, "cannot rename"), "%s", err);
    cr_expect_eq(count_named(tmp, ".tmp."), 0, "temporary file left behind");
}

Test(mnist, failure_keeps_previous_output) {
    pathbuf dir_path = make_small_dir(1);
    const char *dir = dir_path.s;
    pathbuf out_path = path_join(tmp, "out.h5");
    const char *out = out_path.s;
    char err[512];
    cr_assert_eq(prepare_mnist(dir, out, err, sizeof err), 0, "%s", err);
    struct stat before, after;
    cr_assert_eq(stat(out, &before), 0);
    cr_assert_eq(unlink(path_join(dir, "train-images-idx3-ubyte.gz").s), 0);
    cr_assert_eq(prepare_mnist(dir, out, err, sizeof err), PREPARE_BAD_INPUT);
    cr_assert_eq(stat(out, &after), 0, "the previous output was removed");
    cr_expect_eq(before.st_ino, after.st_ino, "the previous output was replaced");
    cr_expect_eq(count_named(tmp, ".tmp."), 0);
}
