/* h5_check: storage that lies (chunks or contiguous space never written, data in other
 * files, oversized chunks) is refused with a line that names it; complete datasets of every
 * layout pass; 64-bit products never wrap. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdint.h>
#include <string.h>

#include "h5_check.h"
#include "testutil.h"

static char tmp[256];
static hid_t file = H5I_INVALID_HID;

static void setup(void) {
    cr_assert_not_null(test_mkdtemp(tmp, sizeof tmp, "h5check"));
    file = H5Fcreate(path_join(tmp, "x.h5").s, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(file, 0);
}

static void teardown(void) {
    if (file >= 0) H5Fclose(file);
    test_rm_tree(tmp);
}

TestSuite(h5check, .init = setup, .fini = teardown);

/* A uint8 dataset of the given shape; chunk NULL: contiguous. */
static hid_t create(const char *name, int rank, const hsize_t *dims, const hsize_t *chunk) {
    hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) cr_assert_geq(H5Pset_chunk(dcpl, rank, chunk), 0);
    hid_t d = H5Dcreate2(file, name, H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

/* Writes the block [start, start + count) of a dataset with ones. */
static void write_block(hid_t d, int rank, const hsize_t *start, const hsize_t *count) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= count[i];
    uint8_t buf[4096];
    cr_assert_leq(n, sizeof buf);
    memset(buf, 1, n);
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, count, NULL);
    cr_assert_geq(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), 0);
    cr_assert_geq(H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, buf), 0);
    H5Sclose(ms);
    H5Sclose(fs);
}

static int check(hid_t d, char *err, size_t len) {
    err[0] = '\0';
    int rc = h5_check_storage(d, "x.h5", "/d", err, len);
    H5Dclose(d);
    return rc;
}

Test(h5check, complete_datasets_of_every_layout_pass) {
    char err[512];
    hsize_t dims[2] = {10, 3}, chunk[2] = {4, 3}, all[2] = {0, 0};
    hid_t d = create("contiguous", 2, dims, NULL);
    write_block(d, 2, all, dims);
    cr_expect_eq(check(d, err, sizeof err), 0, "%s", err);
    d = create("chunked", 2, dims, chunk);
    write_block(d, 2, all, dims);
    cr_expect_eq(check(d, err, sizeof err), 0, "%s", err);

    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), space = H5Screate_simple(2, dims, NULL);
    H5Pset_layout(dcpl, H5D_COMPACT);
    d = H5Dcreate2(file, "compact", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    cr_expect_eq(check(d, err, sizeof err), 0, "%s", err);
    H5Pclose(dcpl);
    H5Sclose(space);

    hsize_t none[1] = {0}, c1[1] = {4}; /* no elements: no chunks needed */
    cr_expect_eq(check(create("empty", 1, none, c1), err, sizeof err), 0, "%s", err);
}

Test(h5check, unwritten_contiguous_space_is_refused) {
    char err[512];
    hsize_t dims[1] = {32};
    cr_expect_eq(check(create("c", 1, dims, NULL), err, sizeof err), -1);
    cr_expect(strstr(err, "x.h5: /d: its 32 elements were never written") != NULL, "%s", err);
}

Test(h5check, missing_chunks_are_counted_and_the_first_is_named) {
    char err[512];
    hsize_t dims[1] = {10}, chunk[1] = {4}, start[1] = {0}, count[1] = {4};
    hid_t d = create("a", 1, dims, chunk);
    write_block(d, 1, start, count);
    cr_expect_eq(check(d, err, sizeof err), -1);
    cr_expect(strstr(err, "2 of 3 chunks were never written (the first holds items 4..7,") != NULL, "%s", err);

    count[0] = 8; /* only the last, partial chunk missing: its items end at the extent */
    d = create("b", 1, dims, chunk);
    write_block(d, 1, start, count);
    cr_expect_eq(check(d, err, sizeof err), -1);
    cr_expect(strstr(err, "1 of 3 chunks were never written (the first holds items 8..9,") != NULL, "%s", err);
}

Test(h5check, a_missing_chunk_inside_a_2d_dataset_is_found) {
    char err[512];
    hsize_t dims[2] = {4, 6}, chunk[2] = {2, 3};
    hid_t d = create("m", 2, dims, chunk);
    /* every chunk but the one at (2, 0) */
    hsize_t s1[2] = {0, 0}, c1[2] = {2, 6}, s2[2] = {2, 3}, c2[2] = {2, 3};
    write_block(d, 2, s1, c1);
    write_block(d, 2, s2, c2);
    cr_expect_eq(check(d, err, sizeof err), -1);
    cr_expect(strstr(err, "1 of 4 chunks were never written (the first holds items 2..3,") != NULL, "%s", err);
}

Test(h5check, external_storage_and_oversized_chunks_are_refused) {
    char err[512];
    hsize_t dims[1] = {16};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), space = H5Screate_simple(1, dims, NULL);
    cr_assert_geq(H5Pset_external(dcpl, path_join(tmp, "raw.bin").s, 0, 16), 0);
    hid_t d = H5Dcreate2(file, "ext", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    cr_expect_eq(check(d, err, sizeof err), -1);
    cr_expect(strstr(err, "stored in 1 external file(s)") != NULL, "%s", err);

    hsize_t big[2] = {1 << 20, 512}; /* one 512 MiB chunk, never allocated by HDF5 */
    cr_expect_eq(check(create("big", 2, big, big), err, sizeof err), -1);
    cr_expect(strstr(err, "chunks of 536870912 bytes: expected at most 268435456") != NULL, "%s", err);
}

/* A chunk recorded at another size than its storage implies (HDF5 1.10 would copy the whole
 * chunk out of a buffer of the recorded size): unfiltered and through Fletcher32, written
 * raw with H5Dwrite_chunk as a crafted file would hold them; the true sizes pass. */
static hid_t raw_chunks(const char *name, int fletcher, size_t first, size_t second) {
    hsize_t dims[1] = {8}, chunk[1] = {4}, off0[1] = {0}, off1[1] = {4};
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert_geq(H5Pset_chunk(dcpl, 1, chunk), 0);
    if (fletcher) cr_assert_geq(H5Pset_fletcher32(dcpl), 0);
    hid_t d = H5Dcreate2(file, name, H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(d, 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    static const uint8_t bytes[16] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_geq(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off0, first, bytes), 0);
    cr_assert_geq(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off1, second, bytes), 0);
    return d;
}

Test(h5check, chunks_recorded_at_a_wrong_size_are_refused) {
    char err[512];
    cr_expect_eq(check(raw_chunks("/ok", 0, 4, 4), err, sizeof err), 0, "%s", err);
    cr_expect_eq(check(raw_chunks("/ok32", 1, 8, 8), err, sizeof err), 0, "%s", err);
    cr_expect_eq(check(raw_chunks("/short", 0, 4, 2), err, sizeof err), -1);
    cr_expect(strstr(err, "x.h5: /d: a chunk at row 4 is stored in 2 bytes: expected 4 (the file is corrupt)"), "%s",
              err);
    cr_expect_eq(check(raw_chunks("/short32", 1, 3, 8), err, sizeof err), -1);
    cr_expect(strstr(err, "a chunk at row 0 is stored in 3 bytes: expected 8"), "%s", err);
}

Test(h5check, products_never_wrap) {
    uint64_t out = 7;
    cr_expect_eq(ds_mul_u64(1ull << 32, 1ull << 31, &out), 0);
    cr_expect_eq(out, 1ull << 63);
    cr_expect_eq(ds_mul_u64(1ull << 32, 1ull << 32, &out), -1);
    cr_expect_eq(ds_mul_u64(UINT64_MAX, 2, &out), -1);
    cr_expect_eq(ds_mul_u64(0, UINT64_MAX, &out), 0);
    cr_expect_eq(out, 0);
    cr_expect_gt(ds_memory_limit(), 1ull << 20);
}
