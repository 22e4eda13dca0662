/* checkpoint: round trips of everything a resume needs, `latest` and pruning, and the
 * failures a cluster produces: corrupt and truncated files, wrong shapes, a full or
 * read-only disk, and a crash in the middle of a write. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "checkpoint.h"

static char tmp[256];      /* this test's scratch directory; each test runs in its own process */
static char mnt[300] = ""; /* a tmpfs mounted by the test, unmounted by teardown */


static void setup(void) {
    cr_assert_not_null(test_mkdtemp(tmp, sizeof tmp, "ckpt"));
}

static void teardown(void) {
    if (mnt[0]) umount2(mnt, MNT_DETACH);
    test_rm_tree(tmp);
}

TestSuite(ckpt, .init = setup, .fini = teardown);

/* ---- a small model's state ------------------------------------------------------------ */

typedef struct {
    float w[12], b[5], mw[12], mb[5];
    ckpt_tensor t[4];
    uint64_t rng[2 * 4];
    uint8_t js[10];
    int64_t step, epoch, step_in_epoch, tokens;
    int32_t world;
    double lr, best;
    ckpt_field f[9];
    ckpt_meta meta;
} state;

/* Values depend on `seed`, so two checkpoints of one test differ. */
static void make_state(state *s, long long step, float seed) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 12; i++) s->w[i] = seed + 0.5f * (float)i, s->mw[i] = -seed * (float)i;
    for (int i = 0; i < 5; i++) s->b[i] = seed - (float)i, s->mb[i] = seed * 0.25f * (float)i;
    s->t[0] = (ckpt_tensor){"params", "fc0.weight", 2, {3, 4}, s->w};
    s->t[1] = (ckpt_tensor){"params", "fc0.bias", 1, {5}, s->b};
    s->t[2] = (ckpt_tensor){"adam_m", "fc0.weight", 2, {3, 4}, s->mw};
    s->t[3] = (ckpt_tensor){"adam_m", "fc0.bias", 1, {5}, s->mb};
    for (int i = 0; i < 8; i++)
        s->rng[i] = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) + (uint64_t)step;
    for (int i = 0; i < 10; i++) s->js[i] = (uint8_t)(i * 7 + step);
    s->step = step, s->epoch = 3, s->step_in_epoch = 17, s->world = 2, s->lr = 1e-3 * seed;
    s->tokens = 123456789012LL, s->best = 2.5;
    s->f[0] = (ckpt_field){"train_state", "step", CKPT_I64, 0, {0, 0}, &s->step};
    s->f[1] = (ckpt_field){"train_state", "epoch", CKPT_I64, 0, {0, 0}, &s->epoch};
    s->f[2] = (ckpt_field){"train_state", "step_in_epoch", CKPT_I64, 0, {0, 0}, &s->step_in_epoch};
    s->f[3] = (ckpt_field){"train_state", "world_size", CKPT_I32, 0, {0, 0}, &s->world};
    s->f[4] = (ckpt_field){"train_state", "lr", CKPT_F64, 0, {0, 0}, &s->lr};
    s->f[5] = (ckpt_field){"train_state", "rng", CKPT_U64, 2, {2, 4}, s->rng};
    s->f[6] = (ckpt_field){"job_state", "data_consumed", CKPT_U8, 1, {10, 0}, s->js};
    s->f[7] = (ckpt_field){"job_state", "tokens_seen", CKPT_I64, 0, {0, 0}, &s->tokens};
    s->f[8] = (ckpt_field){"job_state", "best_val_loss", CKPT_F64, 0, {0, 0}, &s->best};
    ckpt_meta *m = &s->meta;
    snprintf(m->job, sizeof m->job, "classify");
    m->config_text = "model = mlp\nlr = 0.001\n";
    m->metrics_json = "{\"loss\": 0.25}";
    m->fields = s->f;
    m->nfields = 9;
}

static pathbuf ckpt_name(long long step) {
    pathbuf p;
    snprintf(p.s, sizeof p.s, "ckpt-%08lld", step);
    return p;
}

static void write_ok(const char *dir, long long step, float seed, int keep) {
    state s;
    make_state(&s, step, seed);
    char err[512] = "";
    cr_assert_eq(ckpt_write(dir, ckpt_name(step).s, &s.meta, s.t, 4, keep, err, sizeof err), 0,
                 "%s", err);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static pathbuf read_text(const char *path) {
    pathbuf p = {""};
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(p.s, 1, sizeof p.s - 1, f);
    p.s[n] = '\0';
    fclose(f);
    return p;
}

/* How many entries of dir start with '.' and end with ".tmp". */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' && len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) n++;
    }
    closedir(d);
    return n;
}

static void flip_byte(const char *path, long long offset) {
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, offset), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, offset), 1);
    close(fd);
}

/* Where chunk `index` of dataset dpath lies in the file, and its size. */
static void chunk_location(const char *path, const char *dpath, int index, haddr_t *addr,
                           hsize_t *size) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, dpath, H5P_DEFAULT);
    cr_assert_geq(ds, 0);
    hid_t space = H5Dget_space(ds);
    hsize_t offset[4];
    unsigned mask;
    cr_assert_geq(H5Dget_chunk_info(ds, space, (hsize_t)index, offset, &mask, addr, size), 0);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
}

/* HDF5 numbers the identifiers of each kind consecutively and never reuses one, so the
 * dataspaces, property lists and types created since a mark that are still valid are the
 * ones someone forgot to close; open files, groups, datasets and attributes are counted
 * directly. h5_leaks(h5_mark()) is 0 when the code in between closed all it opened. */
typedef struct {
    hid_t space, plist, type;
} h5_marks;

static h5_marks h5_mark(void) {
    h5_marks m = {H5Screate(H5S_SCALAR), H5Pcreate(H5P_DATASET_XFER), H5Tcopy(H5T_NATIVE_INT)};
    H5Sclose(m.space);
    H5Pclose(m.plist);
    H5Tclose(m.type);
    return m;
}

static long long valid_between(hid_t from, hid_t to) {
    long long n = 0;
    for (hid_t id = from + 1; id < to; id++) n += H5Iis_valid(id) > 0;
    return n;
}

static long long h5_leaks(h5_marks before) {
    h5_marks now = h5_mark();
    return valid_between(before.space, now.space) + valid_between(before.plist, now.plist) +
           valid_between(before.type, now.type) + H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
}

static ckpt *open_ok(const char *path) {
    char err[512] = "";
    ckpt *c = ckpt_open(path, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

/* Asserts the checkpoint at path holds make_state(step, seed). */
static void check_state(const char *path, long long step, float seed) {
    state want, got;
    make_state(&want, step, seed);
    memset(&got, 0, sizeof got);
    ckpt *c = open_ok(path);
    char err[512];
    float *dst[4] = {got.w, got.b, got.mw, got.mb};
    for (int i = 0; i < 4; i++) {
        ckpt_tensor t = want.t[i];
        t.data = dst[i];
        cr_assert_eq(ckpt_read(c, &t, err, sizeof err), 0, "%s", err);
    }
    cr_assert_arr_eq(got.w, want.w, sizeof want.w);
    cr_assert_arr_eq(got.b, want.b, sizeof want.b);
    cr_assert_arr_eq(got.mw, want.mw, sizeof want.mw);
    cr_assert_arr_eq(got.mb, want.mb, sizeof want.mb);
    const ckpt_meta *m = ckpt_get_meta(c);
    cr_assert_str_eq(m->job, "classify");
    cr_assert_eq(m->format_version, CKPT_FORMAT_VERSION);
    cr_assert_str_eq(m->config_text, want.meta.config_text);
    cr_assert_str_eq(m->metrics_json, want.meta.metrics_json);
    /* every field comes back by name: scalars into the caller's memory, arrays malloc'd */
    for (int i = 0; i < 9; i++) {
        ckpt_field f = want.f[i];
        int64_t scalar = 0;
        f.data = f.ndim == 0 ? &scalar : NULL;
        f.dims[0] = f.dims[1] = 0;
        cr_assert_eq(ckpt_read_field(c, &f, err, sizeof err), 0, "%s", err);
        size_t bytes = f.type == CKPT_I32 ? 4 : f.type == CKPT_U8 ? 1 : 8;
        for (int d = 0; d < f.ndim; d++) {
            cr_assert_eq(f.dims[d], want.f[i].dims[d], "%s", f.name);
            bytes *= (size_t)f.dims[d];
        }
        cr_assert_arr_eq(f.data, want.f[i].data, bytes, "%s", f.name);
        if (f.ndim > 0) free(f.data);
    }
    ckpt_close(c);
}

/* ---- round trips ---------------------------------------------------------------------- */

Test(ckpt, round_trip_and_latest) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 10, 1.5f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000010.h5");
    check_state(p.s, 10, 1.5f);
    cr_assert_str_eq(read_text(path_join(tmp, "latest").s).s, "ckpt-00000010.h5\n");
    cr_assert_eq(count_temps(tmp), 0);

    ckpt *c = open_ok(p.s);
    cr_assert(ckpt_has(c, "params", "fc0.weight"));
    cr_assert(ckpt_has(c, "adam_m", "fc0.bias"));
    cr_assert_not(ckpt_has(c, "adam_v", "fc0.bias"));
    cr_assert_not(ckpt_has(c, "params", "fc1.weight"));
    /* a field of another shape or rank, or one that is not there, is named in the error */
    uint8_t small[4];
    ckpt_field f = {"job_state", "data_consumed", CKPT_U8, 1, {4, 0}, small};
    char err[512] = "";
    cr_assert_eq(ckpt_read_field(c, &f, err, sizeof err), -1);
    cr_assert(strstr(err, "/job_state/data_consumed: dimension 0 is 10, expected 4"), "%s", err);
    int64_t v;
    ckpt_field g = {"train_state", "rng", CKPT_I64, 0, {0, 0}, &v};
    cr_assert_not(ckpt_has_field(c, &g));
    cr_assert_eq(ckpt_read_field(c, &g, err, sizeof err), -1);
    cr_assert(strstr(err, "attribute /train_state/rng missing"), "%s", err);
    ckpt_field h = {"train_state", "epoch", CKPT_I64, 0, {0, 0}, &v};
    cr_assert(ckpt_has_field(c, &h));
    ckpt_close(c);

    write_ok(tmp, 20, 2.5f, 0);
    cr_assert_str_eq(read_text(path_join(tmp, "latest").s).s, "ckpt-00000020.h5\n");
    check_state(path_join(tmp, "ckpt-00000020.h5").s, 20, 2.5f);
    check_state(p.s, 10, 1.5f);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

/* The directory, or its `latest` file, opens the checkpoint `latest` names; ckpt_count
 * counts a group's tensors. */
Test(ckpt, directory_and_latest_open_the_latest) {
    write_ok(tmp, 10, 1.5f, 0);
    write_ok(tmp, 20, 2.5f, 0);
    check_state(tmp, 20, 2.5f);
    check_state(path_join(tmp, "latest").s, 20, 2.5f);
    ckpt *c = open_ok(tmp);
    cr_assert_eq(ckpt_count(c, "params"), 2);
    cr_assert_eq(ckpt_count(c, "adam_m"), 2);
    cr_assert_eq(ckpt_count(c, "nosuch"), -1);
    ckpt_close(c);
    /* a directory without `latest` is not a checkpoint */
    pathbuf empty = path_join(tmp, "empty");
    cr_assert_eq(mkdir(empty.s, 0755), 0);
    char err[512] = "";
    cr_assert_null(ckpt_open(empty.s, err, sizeof err));
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
}

Test(ckpt, empty_field_and_strings) {
    state s;
    make_state(&s, 5, 1.0f);
    s.f[6].dims[0] = 0; /* an empty array field: a contiguous empty dataset */
    s.f[6].data = NULL;
    s.meta.config_text = NULL;
    s.meta.metrics_json = NULL;
    char err[512] = "";
    cr_assert_eq(ckpt_write(tmp, "ckpt-00000005", &s.meta, s.t, 4, 0, err, sizeof err), 0, "%s",
                 err);
    ckpt *c = open_ok(path_join(tmp, "ckpt-00000005.h5").s);
    const ckpt_meta *m = ckpt_get_meta(c);
    ckpt_field f = {"job_state", "data_consumed", CKPT_U8, 1, {0, 0}, NULL};
    char e2[512];
    cr_assert_eq(ckpt_read_field(c, &f, e2, sizeof e2), 0, "%s", e2);
    cr_assert_eq(f.dims[0], 0);
    free(f.data);
    cr_assert_str_eq(m->config_text, "");
    cr_assert_str_eq(m->metrics_json, "");
    ckpt_close(c);
}

/* Every dataset with data carries the Fletcher32 filter, in chunks. */
Test(ckpt, datasets_are_checksummed) {
    write_ok(tmp, 1, 1.0f, 0);
    hid_t f = H5Fopen(path_join(tmp, "ckpt-00000001.h5").s, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    const char *names[] = {"/params/fc0.weight", "/adam_m/fc0.bias", "/train_state/rng", "/job_state/data_consumed"};
    for (int i = 0; i < 4; i++) {
        hid_t ds = H5Dopen2(f, names[i], H5P_DEFAULT);
        cr_assert_geq(ds, 0, "%s", names[i]);
        hid_t dcpl = H5Dget_create_plist(ds);
        cr_assert_eq(H5Pget_layout(dcpl), H5D_CHUNKED, "%s", names[i]);
        int found = 0;
        for (int k = 0; k < H5Pget_nfilters(dcpl); k++) {
            unsigned flags, cd[4];
            size_t ncd = 4;
            char fname[64];
            unsigned conf;
            if (H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, sizeof fname, fname, &conf) ==
                H5Z_FILTER_FLETCHER32)
                found = 1;
        }
        cr_assert(found, "%s has no Fletcher32 filter", names[i]);
        H5Pclose(dcpl);
        H5Dclose(ds);
    }
    H5Fclose(f);
}

/* Tensors of several chunks, with partial edge chunks along the first and along the last
 * dimension, and an odd-length job_state: HDF5's own reader (which checks every checksum
 * through its filter pipeline) and ckpt_read both return exactly what was written. */
Test(ckpt, multi_chunk_tensors_read_by_hdf5) {
    size_t n1 = 1100 * 1000, n2 = 2 * 1500000;
    float *a = malloc(n1 * sizeof *a), *b = malloc(n2 * sizeof *b);
    float *back = malloc(n2 * sizeof *back);
    for (size_t i = 0; i < n1; i++) a[i] = (float)i * 0.5f;
    for (size_t i = 0; i < n2; i++) b[i] = -(float)i;
    state s;
    make_state(&s, 1, 1.0f);
    uint8_t js[11] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    s.f[6].data = js;
    s.f[6].dims[0] = sizeof js;
    s.t[0] = (ckpt_tensor){"params", "wide", 2, {1100, 1000}, a};
    s.t[1] = (ckpt_tensor){"params", "long", 2, {2, 1500000}, b};
    char err[512] = "";
    cr_assert_eq(ckpt_write(tmp, "ckpt-00000001", &s.meta, s.t, 4, 0, err, sizeof err), 0, "%s",
                 err);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");

    hid_t f = H5Fopen(p.s, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t ds = H5Dopen2(f, "/params/wide", H5P_DEFAULT);
    cr_assert_geq(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
    H5Dclose(ds);
    cr_assert_arr_eq(back, a, n1 * sizeof *a);
    ds = H5Dopen2(f, "/params/long", H5P_DEFAULT);
    cr_assert_geq(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
    H5Dclose(ds);
    cr_assert_arr_eq(back, b, n2 * sizeof *b);
    uint8_t js_back[11];
    ds = H5Dopen2(f, "/job_state/data_consumed", H5P_DEFAULT);
    cr_assert_geq(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, js_back), 0);
    H5Dclose(ds);
    cr_assert_arr_eq(js_back, js, sizeof js);
    H5Fclose(f);

    ckpt *c = open_ok(p.s);
    memset(back, 0, n2 * sizeof *back);
    ckpt_tensor t = s.t[0];
    t.data = back;
    cr_assert_eq(ckpt_read(c, &t, err, sizeof err), 0, "%s", err);
    cr_assert_arr_eq(back, a, n1 * sizeof *a);
    t = s.t[1];
    t.data = back;
    cr_assert_eq(ckpt_read(c, &t, err, sizeof err), 0, "%s", err);
    cr_assert_arr_eq(back, b, n2 * sizeof *b);
    ckpt_field jf = {"job_state", "data_consumed", CKPT_U8, 1, {0, 0}, NULL};
    cr_assert_eq(ckpt_read_field(c, &jf, err, sizeof err), 0, "%s", err);
    cr_assert_eq(jf.dims[0], (int64_t)sizeof js);
    cr_assert_arr_eq(jf.data, js, sizeof js);
    free(jf.data);
    ckpt_close(c);

    /* a flipped byte in the partial last chunk (stored full size, as HDF5 does) */
    haddr_t addr;
    hsize_t size;
    chunk_location(p.s, "/params/wide", 1, &addr, &size);
    cr_assert_eq(size, 1048 * 1000 * 4 + 4);
    flip_byte(p.s, (long long)addr + 1000);
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, "/params/wide: checksum mismatch"), "%s", err);
    free(a);
    free(b);
    free(back);
}

/* Replaces dataset dpath with one written through HDF5's filter pipeline. */
static void rewrite_with_hdf5(const char *path, const char *dpath, int ndim, const hsize_t *dims,
                              const hsize_t *chunk, const float *data) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    cr_assert_geq(H5Ldelete(f, dpath, H5P_DEFAULT), 0);
    hid_t space = H5Screate_simple(ndim, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t ds = H5Dcreate2(f, dpath, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert_geq(ds, 0);
    cr_assert_geq(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(f);
}

/* Datasets written by other tools (h5py with fletcher32=True): chunks shaped like ours are
 * checked by our own checksum code, other chunk shapes go through HDF5's reader; either
 * way the values come back, and a corrupt byte is caught. */
Test(ckpt, reads_datasets_written_by_hdf5) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    float w[12], b[5];
    for (int i = 0; i < 12; i++) w[i] = 100.0f + (float)i;
    for (int i = 0; i < 5; i++) b[i] = -7.0f * (float)i;
    hsize_t wdims[2] = {3, 4}, wchunk[2] = {2, 4}; /* runs of the array, 2 chunks, one partial */
    hsize_t bdims[1] = {5}, bchunk[1] = {2};
    rewrite_with_hdf5(p.s, "/params/fc0.weight", 2, wdims, wchunk, w);
    hsize_t mdims[2] = {3, 4}, mchunk[2] = {2, 3}; /* not runs: HDF5's reader */
    rewrite_with_hdf5(p.s, "/adam_m/fc0.weight", 2, mdims, mchunk, w);
    rewrite_with_hdf5(p.s, "/params/fc0.bias", 1, bdims, bchunk, b);

    ckpt *c = open_ok(p.s);
    float got[12];
    char err[512];
    ckpt_tensor t = {"params", "fc0.weight", 2, {3, 4}, got};
    cr_assert_eq(ckpt_read(c, &t, err, sizeof err), 0, "%s", err);
    cr_assert_arr_eq(got, w, sizeof w);
    t.group = "adam_m";
    memset(got, 0, sizeof got);
    cr_assert_eq(ckpt_read(c, &t, err, sizeof err), 0, "%s", err);
    cr_assert_arr_eq(got, w, sizeof w);
    ckpt_tensor tb = {"params", "fc0.bias", 1, {5}, got};
    cr_assert_eq(ckpt_read(c, &tb, err, sizeof err), 0, "%s", err);
    cr_assert_arr_eq(got, b, sizeof b);
    ckpt_close(c);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

Test(ckpt, corrupt_chunk_of_a_dataset_written_by_hdf5) {
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    float w[12] = {0};
    hsize_t dims[2] = {3, 4}, chunk[2] = {2, 3};
    rewrite_with_hdf5(p.s, "/adam_m/fc0.weight", 2, dims, chunk, w);
    haddr_t addr;
    hsize_t size;
    chunk_location(p.s, "/adam_m/fc0.weight", 1, &addr, &size);
    flip_byte(p.s, (long long)addr + 1);
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, "/adam_m/fc0.weight") && strstr(err, "checksum"), "%s", err);
}

/* ---- latest, pruning, candidates ------------------------------------------------------ */

Test(ckpt, keep_two_prunes_older) {
    pathbuf other = path_join(tmp, "best.h5"), series = path_join(tmp, "final-00000001.h5");
    fclose(fopen(other.s, "w"));
    fclose(fopen(series.s, "w"));
    for (long long step = 1; step <= 5; step++) {
        write_ok(tmp, step * 100, (float)step, 2);
        for (long long k = 1; k <= step; k++) {
            pathbuf p = path_join(tmp, ckpt_name(k * 100).s);
            strcat(p.s, ".h5");
            int should = k >= step - 1;
            cr_assert_eq(exists(p.s), should, "after step %lld: %s %s", step * 100, p.s,
                         should ? "missing" : "not pruned");
        }
    }
    cr_assert_str_eq(read_text(path_join(tmp, "latest").s).s, "ckpt-00000500.h5\n");
    cr_assert(exists(other.s), "a file without a step was pruned");
    cr_assert(exists(series.s), "a file of another series was pruned");
}

/* After a rollback (resuming from an older step), the new checkpoint is the one kept. */
Test(ckpt, prune_never_deletes_the_new_checkpoint) {
    write_ok(tmp, 300, 3.0f, 0);
    write_ok(tmp, 400, 4.0f, 0);
    write_ok(tmp, 200, 2.0f, 1);
    cr_assert(exists(path_join(tmp, "ckpt-00000200.h5").s));
    cr_assert_not(exists(path_join(tmp, "ckpt-00000300.h5").s));
    cr_assert_not(exists(path_join(tmp, "ckpt-00000400.h5").s));
    cr_assert_str_eq(read_text(path_join(tmp, "latest").s).s, "ckpt-00000200.h5\n");
}

Test(ckpt, candidates_latest_first_then_by_step) {
    char *paths[8];
    cr_assert_eq(ckpt_candidates(path_join(tmp, "nonexistent").s, paths, 8), 0);
    cr_assert_eq(ckpt_candidates(tmp, paths, 8), 0);
    write_ok(tmp, 7, 1.0f, 0);
    write_ok(tmp, 30, 2.0f, 0);
    write_ok(tmp, 200, 3.0f, 0);
    fclose(fopen(path_join(tmp, ".ckpt-00000999.h5.tmp").s, "w")); /* not a candidate */
    fclose(fopen(path_join(tmp, "notes.txt").s, "w"));
    FILE *f = fopen(path_join(tmp, "latest").s, "w");
    fputs("ckpt-00000030.h5\n", f);
    fclose(f);
    int n = ckpt_candidates(tmp, paths, 8);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(paths[0], path_join(tmp, "ckpt-00000030.h5").s);
    cr_assert_str_eq(paths[1], path_join(tmp, "ckpt-00000200.h5").s);
    cr_assert_str_eq(paths[2], path_join(tmp, "ckpt-00000007.h5").s);
    for (int i = 0; i < n; i++) free(paths[i]);
    cr_assert_eq(ckpt_candidates(tmp, paths, 2), 2);
    free(paths[0]);
    free(paths[1]);
    /* a `latest` naming a missing file is skipped */
    f = fopen(path_join(tmp, "latest").s, "w");
    fputs("ckpt-00000555.h5\n", f);
    fclose(f);
    cr_assert_eq(ckpt_candidates(tmp, paths, 8), 3);
    cr_assert_str_eq(paths[0], path_join(tmp, "ckpt-00000200.h5").s);
    for (int i = 0; i < 3; i++) free(paths[i]);
}

/* ---- damaged files -------------------------------------------------------------------- */


Test(ckpt, corrupt_byte_names_the_dataset) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    haddr_t addr;
    hsize_t size;
    chunk_location(p.s, "/params/fc0.weight", 0, &addr, &size);
    flip_byte(p.s, (long long)(addr + size / 2));
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, p.s) && strstr(err, "/params/fc0.weight") && strstr(err, "checksum"),
              "%s",
              err);
    cr_assert_null(strchr(err, '\n'));
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

/* A flipped byte in the metadata (here: the root's attributes) is caught by the metadata
 * checksums of the file format. */
Test(ckpt, corrupt_metadata_fails) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    /* the config text is stored once, in the root group's object header */
    int fd = open(p.s, O_RDONLY);
    static char buf[1 << 16];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    close(fd);
    const char *needle = "model = mlp";
    long long at = -1;
    for (ssize_t i = 0; i + 11 <= n && at < 0; i++)
        if (memcmp(buf + i, needle, 11) == 0) at = i;
    cr_assert_geq(at, 0, "config text not found in the file");
    flip_byte(p.s, at + 2);
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, p.s), "%s", err);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

Test(ckpt, truncated_file_fails) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    struct stat st;
    cr_assert_eq(stat(p.s, &st), 0);
    cr_assert_eq(truncate(p.s, st.st_size / 2), 0);
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, p.s) && strstr(err, "truncated"), "%s", err);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

Test(ckpt, not_hdf5_or_missing) {
    h5_marks ids = h5_mark();
    pathbuf p = path_join(tmp, "junk.h5");
    FILE *f = fopen(p.s, "w");
    fputs("not an HDF5 file\n", f);
    fclose(f);
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, p.s) && strstr(err, "cannot open as HDF5"), "%s", err);
    cr_assert_null(ckpt_open(path_join(tmp, "missing.h5").s, err, sizeof err));
    cr_assert(strstr(err, "No such file or directory"), "%s", err);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

/* HDF5's error printing is silenced during a call, and the caller's setting restored. */
static herr_t count_reports(hid_t stack, void *data) {
    (void)stack;
    ++*(int *)data;
    return 0;
}

Test(ckpt, hdf5_error_handler_restored) {
    int reports = 0;
    H5Eset_auto2(H5E_DEFAULT, count_reports, &reports);
    char err[512];
    cr_assert_null(ckpt_open(path_join(tmp, "missing.h5").s, err, sizeof err));
    cr_assert_eq(reports, 0, "HDF5 reported an error stack during ckpt_open");
    H5E_auto2_t func = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    cr_assert(func == count_reports && data == &reports, "the error handler was not restored");
    H5Fopen(path_join(tmp, "missing.h5").s, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_eq(reports, 1);
}

/* Edits the root attributes of a written checkpoint with plain HDF5 calls. */
static void edit_attrs(const char *path, const char *del, int version) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    if (del) cr_assert_geq(H5Adelete(f, del), 0);
    if (version) {
        hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
        cr_assert_geq(H5Awrite(a, H5T_NATIVE_INT, &version), 0);
        H5Aclose(a);
    }
    H5Fclose(f);
}

Test(ckpt, wrong_format_version) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    edit_attrs(p.s, NULL, 7);
    char err[512] = "", want[1200];
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    snprintf(want, sizeof want, "%s: format_version 7, expected 1 to %d", p.s, CKPT_FORMAT_VERSION);
    cr_assert_str_eq(err, want);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

Test(ckpt, missing_attribute) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    edit_attrs(p.s, "metrics", 0);
    char err[512] = "";
    cr_assert_null(ckpt_open(p.s, err, sizeof err));
    cr_assert(strstr(err, p.s) && strstr(err, "'metrics' missing"), "%s", err);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

Test(ckpt, read_checks_shape_and_name) {
    h5_marks ids = h5_mark();
    write_ok(tmp, 1, 1.0f, 0);
    pathbuf p = path_join(tmp, "ckpt-00000001.h5");
    ckpt *c = open_ok(p.s);
    float buf[12];
    char err[512] = "";
    ckpt_tensor t = {"params", "fc0.weight", 2, {4, 3}, buf};
    cr_assert_eq(ckpt_read(c, &t, err, sizeof err), -1);
    cr_assert(strstr(err, "/params/fc0.weight") && strstr(err, "[3, 4] in the checkpoint") &&
                  strstr(err, "expected [4, 3]"),
              "%s", err);
    ckpt_tensor t1 = {"params", "fc0.weight", 1, {12}, buf};
    cr_assert_eq(ckpt_read(c, &t1, err, sizeof err), -1);
    cr_assert(strstr(err, "[3, 4]") && strstr(err, "[12]"), "%s", err);
    ckpt_tensor t2 = {"params", "fc9.weight", 1, {12}, buf};
    cr_assert_eq(ckpt_read(c, &t2, err, sizeof err), -1);
    cr_assert(strstr(err, "/params/fc9.weight: not in the checkpoint"), "%s", err);
    ckpt_tensor t3 = {"ema", "fc0.weight", 2, {3, 4}, buf};
    cr_assert_eq(ckpt_read(c, &t3, err, sizeof err), -1);
    cr_assert(strstr(err, "/ema/fc0.weight: not in the checkpoint"), "%s", err);
    ckpt_close(c);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

/* ---- failing file systems ------------------------------------------------------------- */

/* Root bypasses permission bits, so a read-only directory is no test here; a directory
 * whose parent is a regular file fails for everyone. */
Test(ckpt, unwritable_directory) {
    pathbuf file = path_join(tmp, "plain");
    fclose(fopen(file.s, "w"));
    pathbuf dir = path_join(file.s, "checkpoints");
    state s;
    make_state(&s, 1, 1.0f);
    char err[512] = "";
    cr_assert_eq(ckpt_write(dir.s, "ckpt-00000001", &s.meta, s.t, 4, 2, err, sizeof err), -1);
    cr_assert(strstr(err, file.s) && strstr(err, "Not a directory"), "%s", err);
}

Test(ckpt, bad_arguments) {
    h5_marks ids = h5_mark();
    state s;
    make_state(&s, 1, 1.0f);
    char err[512] = "";
    cr_assert_eq(ckpt_write(tmp, "a/b", &s.meta, s.t, 4, 0, err, sizeof err), -1);
    s.t[1].name = "x/y";
    cr_assert_eq(ckpt_write(tmp, "ckpt-1", &s.meta, s.t, 4, 0, err, sizeof err), -1);
    cr_assert(strstr(err, "bad name"), "%s", err);
    make_state(&s, 1, 1.0f);
    s.f[2].name = "a/b";
    cr_assert_eq(ckpt_write(tmp, "ckpt-1", &s.meta, s.t, 4, 0, err, sizeof err), -1);
    cr_assert(strstr(err, "bad field 'train_state/a/b'"), "%s", err);
    make_state(&s, 1, 1.0f);
    s.t[3].name = s.t[2].name; /* duplicate dataset */
    s.t[3].group = s.t[2].group;
    cr_assert_eq(ckpt_write(tmp, "ckpt-1", &s.meta, s.t, 4, 0, err, sizeof err), -1);
    cr_assert(strstr(err, "/adam_m/fc0.weight"), "%s", err);
    cr_assert_eq(count_temps(tmp), 0);
    cr_assert_not(exists(path_join(tmp, "ckpt-1.h5").s));
    cr_assert_not(exists(path_join(tmp, "latest").s));
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}

/* A small tmpfs, when this process may mount one (root in a container usually may). */
static int mount_tmpfs(const char *opts) {
    snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        mnt[0] = '\0';
        return -1;
    }
    return 0;
}

/* The previous checkpoint and `latest` intact, and no temporary file left. */
static void check_survivor(const char *dir, long long step, float seed) {
    char name[1100];
    snprintf(name, sizeof name, "%s.h5\n", ckpt_name(step).s);
    cr_assert_str_eq(read_text(path_join(dir, "latest").s).s, name);
    name[strlen(name) - 1] = '\0';
    check_state(path_join(dir, name).s, step, seed);
    cr_assert_eq(count_temps(dir), 0);
}

/* ckpt_write in a child process that then shuts HDF5 down (H5close) as its exit would: a
 * failed write must close all it opened and leave HDF5 able to shut down (1.10 crashes
 * there after a failed H5Fclose). Returns ckpt_write's result; its message goes to err. */
static int write_in_child(const char *dir, const char *name, const state *s, char *err,
                          size_t errlen) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        char e[512] = "";
        h5_marks ids = h5_mark();
        int rc = ckpt_write(dir, name, &s->meta, s->t, 4, 2, e, sizeof e);
        int leaks = h5_leaks(ids) != 0;
        ssize_t n = write(fds[1], e, strlen(e) + 1);
        H5close();
        _exit(leaks ? 2 : rc == 0 && n > 0 ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = 0, n;
    while ((n = read(fds[0], err + got, errlen - 1 - (size_t)got)) > 0) got += n;
    err[got] = '\0';
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "after ckpt_write (\"%s\") the process died by signal %d", err,
              WTERMSIG(status));
    cr_assert_neq(WEXITSTATUS(status), 2, "ckpt_write (\"%s\") left HDF5 identifiers open", err);
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

Test(ckpt, disk_full_and_read_only) {
    if (mount_tmpfs("size=256k") != 0)
        cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
    write_ok(mnt, 1, 1.0f, 2);

    /* 1 MB of parameters cannot fit */
    state s;
    make_state(&s, 2, 2.0f);
    static float big[256 * 1024];
    s.t[0] = (ckpt_tensor){"params", "fc0.weight", 2, {256, 1024}, big};
    char err[512] = "";
    cr_assert_eq(write_in_child(mnt, "ckpt-00000002", &s, err, sizeof err), -1);
    cr_assert(strstr(err, "No space left on device") && strstr(err, ".ckpt-00000002.h5.tmp"), "%s",
              err);
    check_survivor(mnt, 1, 1.0f);
    /* and this process can still write elsewhere */
    cr_assert_eq(ckpt_write(tmp, "ckpt-00000002", &s.meta, s.t, 4, 2, err, sizeof err), 0, "%s",
                 err);

    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=256k"), 0, "%s",
                 strerror(errno));
    make_state(&s, 3, 3.0f);
    cr_assert_eq(write_in_child(mnt, "ckpt-00000003", &s, err, sizeof err), -1);
    cr_assert(strstr(err, "Read-only file system") && strstr(err, mnt), "%s", err);
    check_survivor(mnt, 1, 1.0f);
}

/* ---- a crash in the middle ------------------------------------------------------------ */

Test(ckpt, crash_mid_write_keeps_previous) {
    write_ok(tmp, 1, 1.0f, 2);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("DTRAIN_TEST_CRASH_IN_CHECKPOINT", "1", 1);
        state s;
        make_state(&s, 2, 2.0f);
        char err[512];
        ckpt_write(tmp, "ckpt-00000002", &s.meta, s.t, 4, 2, err, sizeof err);
        _exit(3); /* the hook did not fire */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);

    pathbuf stale = path_join(tmp, ".ckpt-00000002.h5.tmp");
    cr_assert(exists(stale.s), "the crash left no partial file: the hook fired too early");
    cr_assert_str_eq(read_text(path_join(tmp, "latest").s).s, "ckpt-00000001.h5\n");
    char *paths[4];
    int n = ckpt_candidates(tmp, paths, 4);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(paths[0], path_join(tmp, "ckpt-00000001.h5").s);
    free(paths[0]);
    check_state(path_join(tmp, "ckpt-00000001.h5").s, 1, 1.0f);

    /* the next successful checkpoint removes the stale temporary file */
    write_ok(tmp, 3, 3.0f, 2);
    cr_assert_not(exists(stale.s));
    cr_assert_eq(count_temps(tmp), 0);
    check_state(path_join(tmp, "ckpt-00000003.h5").s, 3, 3.0f);
}

/* ---- format 1 ------------------------------------------------------------------------- */

/* The committed format-1 checkpoint opens, and its state reads from where format 1 kept
 * it: root attributes, /rng_states and the /job_state blob (ckpt_v1.c turns these into the
 * format-2 record; it_ckpt_v1 resumes from it). */
Test(ckpt, format_1_opens_and_reads) {
    h5_marks ids = h5_mark();
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    char path[2048], err[512] = "";
    snprintf(path, sizeof path, "%s/tests/data/ckpt-v1-classify-mlp.h5", src ? src : ".");
    ckpt *c = open_ok(path);
    const ckpt_meta *m = ckpt_get_meta(c);
    cr_assert_eq(m->format_version, 1);
    cr_assert_str_eq(m->job, "classify");
    cr_assert(strstr(m->config_text, "model = mlp\n"), "%s", m->config_text);
    int64_t step = 0, opt_t = 0;
    int32_t world = 0;
    ckpt_field f_step = {"", "step", CKPT_I64, 0, {0, 0}, &step};
    ckpt_field f_opt = {"", "opt_t", CKPT_I64, 0, {0, 0}, &opt_t};
    ckpt_field f_world = {"", "world_size", CKPT_I32, 0, {0, 0}, &world};
    cr_assert_eq(ckpt_read_field(c, &f_step, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read_field(c, &f_opt, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ckpt_read_field(c, &f_world, err, sizeof err), 0, "%s", err);
    cr_assert_eq(step, 40);
    cr_assert_eq(opt_t, 40);
    cr_assert_eq(world, 2);
    ckpt_field rng = {"", "rng_states", CKPT_U64, 2, {0, 0}, NULL};
    cr_assert_eq(ckpt_read_field(c, &rng, err, sizeof err), 0, "%s", err);
    cr_assert(rng.dims[0] == 2 && rng.dims[1] == 4);
    free(rng.data);
    /* the blob: a 16-byte header, 2 ranks x 2 doubles, 1 + 8,000 bytes of image_epoch */
    ckpt_field blob = {"", "job_state", CKPT_U8, 1, {0, 0}, NULL};
    cr_assert_eq(ckpt_read_field(c, &blob, err, sizeof err), 0, "%s", err);
    cr_assert_eq(blob.dims[0], 16 + 2 * 16 + 1 + 8000);
    free(blob.data);
    cr_assert_eq(ckpt_count(c, "params"), 4);
    ckpt_close(c);
    cr_assert_eq(h5_leaks(ids), 0, "HDF5 identifiers left open");
}
