/* checkpoint.c: checkpoints as HDF5 files, written atomically and verified on open.
 *
 * Why a crash cannot lose the last good checkpoint: every byte of a new file is on disk
 * (H5Fclose, then fsync) before the file gets its real name (rename); the name is durable
 * (fsync of the directory) before `latest` points at it; `latest` is durable before any
 * older checkpoint is deleted. Whatever step a crash interrupts, `latest` names a complete
 * file, and a half-written one only ever exists under a hidden temporary name. */
#define _GNU_SOURCE /* memfd_create */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <hdf5.h>

#include "ds_util.h"
#include "h5_check.h"
#include "util.h"

#define PATH_LEN 4096
/* Chunks of at most 4 MiB: the per-chunk cost (a chunk-index entry, one call) vanishes
 * against the copy, and a chunk stays in the CPU cache from the copy to the checksum. */
#define CHUNK_BYTES ((size_t)4 << 20)
#define CRASH_ENV "DTRAIN_TEST_CRASH_IN_CHECKPOINT"
#define LATEST_TMP ".latest.tmp"
#define MAX_RANK 32 /* H5S_MAX_RANK */

/* ---- messages (ds_fail, h5_quiet_*, h5_error_reason: datasets/ds_util.h) ------------- */

/* "PATH: OP OBJECT: REASON", the reason taken from the HDF5 error stack */
static int fail_h5(char *err, size_t errlen, const char *path, const char *op,
                   const char *object) {
    char why[256];
    h5_error_reason(why, sizeof why);
    return ds_fail(err, errlen, "%s: %s%s%s: %s", path, op, object ? " " : "", object ? object : "", why);
}

/* ---- small file-system helpers ------------------------------------------------------- */

static int join(char *out, const char *dir, const char *name, char *err, size_t errlen) {
    int n = snprintf(out, PATH_LEN, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_LEN) return ds_fail(err, errlen, "%s/%s: path too long", dir, name);
    return 0;
}

static int is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* fsync through a fresh descriptor: HDF5 has closed its own, and on Linux an fsync on any
 * descriptor of the file flushes all of its dirty pages. */
static int fsync_path(const char *path, int is_dir, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | (is_dir ? O_DIRECTORY : 0));
    if (fd < 0) return ds_fail(err, errlen, "%s: open for fsync: %s", path, strerror(errno));
    /* some file systems cannot fsync a directory (EINVAL); their renames are as durable
     * as they get */
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && !(is_dir && e == EINVAL))
        return ds_fail(err, errlen, "%s: fsync: %s", path, strerror(e));
    return 0;
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The file name DIR/latest holds, or -1 when it is missing or not a plain name. */
static int read_latest(const char *dir, char *name, size_t len) {
    char path[PATH_LEN];
    if (join(path, dir, "latest", NULL, 0) != 0) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, name, len - 1);
    close(fd);
    if (n <= 0) return -1;
    while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == ' ' || name[n - 1] == '\r')) n--;
    name[n] = '\0';
    /* a name inside DIR, never a path that leads elsewhere */
    if (n == 0 || name[0] == '.' || strchr(name, '/') || strchr(name, '\n')) return -1;
    return 0;
}

/* ---- checkpoint names and steps ------------------------------------------------------ */

/* The step in a checkpoint name is its trailing number ("ckpt-00001234" is step 1234);
 * *prefix_len is where that number starts. -1 when the name does not end in digits. */
static long long stem_step(const char *stem, size_t len, size_t *prefix_len) {
    size_t i = len;
    while (i > 0 && stem[i - 1] >= '0' && stem[i - 1] <= '9') i--;
    if (i == len || len - i > 18) return -1; /* no number, or one that overflows */
    long long step = 0;
    for (size_t k = i; k < len; k++) step = step * 10 + (stem[k] - '0');
    if (prefix_len) *prefix_len = i;
    return step;
}

typedef struct {
    char *name; /* "ckpt-00001234.h5" */
    long long step;
} ckpt_file;

static int by_step_desc(const void *a, const void *b) {
    const ckpt_file *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return -strcmp(x->name, y->name);
}

/* Every visible NAME.h5 regular file in dir, by descending step (those without one last). */
static ckpt_file *list_checkpoints(const char *dir, int *count) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    ckpt_file *files = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    char path[PATH_LEN];
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (nm[0] == '.' || !has_suffix(nm, ".h5")) continue;
        if (join(path, dir, nm, NULL, 0) != 0 || !is_regular_file(path)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            files = xrealloc(files, (size_t)cap * sizeof *files);
        }
        files[n].name = xstrdup(nm);
        files[n].step = stem_step(nm, strlen(nm) - 3, NULL);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(files, (size_t)n, sizeof *files, by_step_desc);
    *count = n;
    return files;
}

static void free_checkpoints(ckpt_file *files, int n) {
    for (int i = 0; i < n; i++) free(files[i].name);
    free(files);
}

int ckpt_candidates(const char *dir, char **paths, int max) {
    if (max <= 0) return 0;
    char latest[256] = "", path[PATH_LEN];
    int n = 0;
    if (read_latest(dir, latest, sizeof latest) == 0 && join(path, dir, latest, NULL, 0) == 0 &&
        is_regular_file(path))
        paths[n++] = xstrdup(path);
    int count;
    ckpt_file *files = list_checkpoints(dir, &count);
    for (int i = 0; i < count && n < max; i++) {
        if (strcmp(files[i].name, latest) == 0) continue;
        if (join(path, dir, files[i].name, NULL, 0) == 0) paths[n++] = xstrdup(path);
    }
    free_checkpoints(files, count);
    return n;
}

/* ---- chunks ------------------------------------------------------------------------
 *
 * The tensors' chunks do not go through HDF5's filter pipeline: that allocates two fresh
 * 4 MiB buffers per chunk (the page faults cost more than the copy) and checksums two bytes
 * at a time. Instead each chunk is copied into one reused buffer, checksummed here, and
 * handed to H5Dwrite_chunk as already filtered; reads take the raw chunk (H5Dread_chunk)
 * and check it here. The bytes on disk are exactly what the pipeline would have written, so
 * HDF5, h5py and h5dump read and verify them as usual (the tests check both directions). */

/* HDF5's Fletcher32 (H5_checksum_fletcher32): 16-bit big-endian words; both sums are folded
 * to 16 bits after every 360 words. Each block is summed in closed form
 *   s1' = s1 + sum(w_i),  s2' = s2 + n*s1 + sum((n - i) * w_i)
 * which the compiler vectorizes; with uint32 arithmetic these are the same integers (mod
 * 2^32) as HDF5's word-by-word loop, so the folds, and the result, are bit-identical. */
static uint32_t fletcher32(const uint8_t *p, size_t len) {
    uint32_t s1 = 0, s2 = 0;
    for (size_t words = len / 2; words > 0;) {
        uint32_t n = words > 360 ? 360 : (uint32_t)words, a = 0, b = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t w = (uint32_t)p[2 * i] << 8 | p[2 * i + 1];
            a += w;
            b += (n - i) * w;
        }
        s2 += n * s1 + b;
        s1 += a;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
        p += 2 * (size_t)n;
        words -= n;
    }
    if (len % 2) {
        s1 += (uint32_t)*p << 8;
        s2 += s1;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return s2 << 16 | s1;
}

/* The filter stores the checksum after the data, little-endian. HDF5 before 1.6.3 computed
 * it with the bytes of each half swapped; readers accept both. */
static void put_le32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

static int checksum_ok(const uint8_t *chunk, size_t nbytes) {
    const uint8_t *q = chunk + nbytes;
    uint32_t stored = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                      (uint32_t)q[3] << 24;
    uint32_t f = fletcher32(chunk, nbytes);
    uint32_t swapped = (f & 0x00ff00ffu) << 8 | (f & 0xff00ff00u) >> 8;
    return stored == f || stored == swapped;
}

/* A dataset's grid of chunks (or of blocks read through HDF5), walked row-major; the one walk
 * for writing, reading and verifying. The chunks are runs of the row-major array when the
 * chunk shape is 1 up to some dimension j, anything at j, and whole after j, which is what
 * chunk_dims makes; then chunk k along dimension j (and any index before it) covers one
 * contiguous run, and grid_init returns 0 (else -1, with the grid still set up). */
typedef struct {
    int ndim, j;
    hsize_t dims[MAX_RANK], chunk[MAX_RANK], start[MAX_RANK];
    size_t elem, stride[MAX_RANK]; /* elements per index step of each dimension */
    size_t chunk_bytes;            /* before the checksum */
} chunk_grid;

static int grid_init(chunk_grid *g, int ndim, const hsize_t *dims, const hsize_t *chunk,
                     size_t elem) {
    if (ndim < 1 || ndim > MAX_RANK) return -1;
    memset(g, 0, sizeof *g);
    g->ndim = ndim;
    g->elem = elem;
    g->chunk_bytes = elem;
    int j = -1; /* the last dimension where chunks are not whole */
    for (int d = ndim - 1; d >= 0; d--) {
        g->dims[d] = dims[d];
        g->chunk[d] = chunk[d];
        g->stride[d] = d == ndim - 1 ? 1 : g->stride[d + 1] * (size_t)dims[d + 1];
        g->chunk_bytes *= (size_t)chunk[d];
        if (j < 0 && chunk[d] != dims[d]) j = d;
    }
    g->j = j < 0 ? 0 : j;
    for (int d = 0; d < g->j; d++)
        if (chunk[d] != 1) return -1;
    return 0;
}

/* The run of the array that the chunk at g->start covers: first element and count. */
static void grid_run(const chunk_grid *g, size_t *first, size_t *count) {
    size_t off = 0;
    for (int d = 0; d < g->ndim; d++) off += (size_t)g->start[d] * g->stride[d];
    hsize_t left = g->dims[g->j] - g->start[g->j];
    *first = off;
    *count = (size_t)(left < g->chunk[g->j] ? left : g->chunk[g->j]) * g->stride[g->j];
}

/* Moves g->start to the next chunk, last dimension fastest; 0 after the last one. */
static int grid_next(chunk_grid *g) {
    for (int d = g->ndim - 1; d >= 0; d--) {
        g->start[d] += g->chunk[d];
        if (g->start[d] < g->dims[d]) return 1;
        g->start[d] = 0;
    }
    return 0;
}

/* ---- writing: the file ------------------------------------------------------------- */

typedef struct {
    const char *dir, *name;
    char final[PATH_LEN], tmp[PATH_LEN]; /* DIR/NAME.h5, DIR/.NAME.h5.tmp */
    hid_t file;
    int detached; /* the file's descriptor points at memory: see detach_from_disk */
    uint8_t *chunk_buf; /* one chunk and its checksum, reused for every chunk */
    char *err;
    size_t errlen;
} writer;

/* HDF5 1.10 does not survive a failing H5Fclose: it frees the file but keeps its ID, and the
 * process later crashes in HDF5's exit handler (HDFFV-11052, fixed in 1.14). And once a
 * metadata flush has failed, every later flush fails too. So at the first I/O error, before
 * any handle is closed, the file's descriptor is pointed at an anonymous in-memory file:
 * the closes that follow write their metadata there and succeed, and the caller unlinks the
 * temporary file. */
static void detach_from_disk(writer *w) {
    if (w->file < 0 || w->detached) return;
    void *handle = NULL;
    int mem = memfd_create("dtrain-abandoned-checkpoint", MFD_CLOEXEC);
    if (mem >= 0 && H5Fget_vfd_handle(w->file, H5P_DEFAULT, &handle) >= 0 && handle &&
        dup2(mem, *(int *)handle) >= 0)
        w->detached = 1;
    if (mem >= 0) close(mem);
}

/* The message first (the next HDF5 call clears the error stack), then off the disk. */
static int w_fail_h5(writer *w, const char *op, const char *object) {
    int rc = fail_h5(w->err, w->errlen, w->tmp, op, object);
    detach_from_disk(w);
    return rc;
}

static int put_attr_at(writer *w, hid_t loc, const char *key, hid_t ftype, hid_t mtype, const void *val) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = space < 0 ? -1 : H5Acreate2(loc, key, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, mtype, val) < 0 ? w_fail_h5(w, "write attribute", key) : 0;
    if (a >= 0) H5Aclose(a);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int put_attr(writer *w, const char *key, hid_t ftype, hid_t mtype, const void *val) {
    return put_attr_at(w, w->file, key, ftype, mtype, val);
}

/* Fixed-length (the text is stored in the attribute itself, under the object header's
 * checksum; a variable-length string would sit in the global heap, which has none). h5py
 * reads it as bytes, h5dump prints it as text. */
static int put_str_attr(writer *w, const char *key, const char *s) {
    const char *v = s ? s : "";
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, strlen(v) + 1) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
        int rc = w_fail_h5(w, "write attribute", key);
        if (t >= 0) H5Tclose(t);
        return rc;
    }
    int rc = put_attr(w, key, t, t, v);
    H5Tclose(t);
    return rc;
}

static int write_attrs(writer *w, const ckpt_meta *m) {
    int version = CKPT_FORMAT_VERSION;
    char job[sizeof m->job + 1];
    snprintf(job, sizeof job, "%.*s", (int)sizeof m->job, m->job);
    if (put_attr(w, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) ||
        put_str_attr(w, "job", job) || put_str_attr(w, "config", m->config_text) ||
        put_str_attr(w, "metrics", m->metrics_json))
        return -1;
    return 0;
}

/* Chunk shape of at most CHUNK_BYTES, filling the innermost dimensions first, so that each
 * chunk is one contiguous run of the row-major array. */
static void chunk_dims(int ndim, const hsize_t *dims, size_t elem, hsize_t *chunk) {
    hsize_t budget = CHUNK_BYTES / elem;
    for (int d = ndim - 1; d >= 0; d--) {
        chunk[d] = dims[d] < budget ? dims[d] : budget;
        if (chunk[d] == 0) chunk[d] = 1;
        budget /= chunk[d];
        if (budget == 0) budget = 1;
    }
}

/* Fletcher32 needs a chunked layout. Fill values are never written: every chunk is
 * written in full right after creation. */
static hid_t checksummed_dcpl(int ndim, const hsize_t *dims, size_t elem) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[MAX_RANK];
    chunk_dims(ndim, dims, elem, chunk);
    if (dcpl >= 0 && (H5Pset_chunk(dcpl, ndim, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
                      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

static hsize_t nelems(int ndim, const hsize_t *dims) {
    hsize_t n = 1;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    return n;
}

/* Every chunk of a dataset whose memory layout is its file layout, checksummed here. */
static int write_chunks(writer *w, hid_t ds, const char *dpath, int ndim, const hsize_t *dims,
                        size_t elem, const void *data) {
    hsize_t chunk[MAX_RANK];
    chunk_grid g;
    chunk_dims(ndim, dims, elem, chunk);
    if (grid_init(&g, ndim, dims, chunk, elem) != 0)
        return ds_fail(w->err, w->errlen, "%s: %s: unexpected chunk shape", w->tmp, dpath);
    if (!w->chunk_buf) w->chunk_buf = xmalloc(CHUNK_BYTES + 4);
    do {
        size_t first, count;
        grid_run(&g, &first, &count);
        memcpy(w->chunk_buf, (const char *)data + first * elem, count * elem);
        /* the part of an edge chunk outside the array: zeros, not stale bytes */
        memset(w->chunk_buf + count * elem, 0, g.chunk_bytes - count * elem);
        put_le32(w->chunk_buf + g.chunk_bytes, fletcher32(w->chunk_buf, g.chunk_bytes));
        if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, g.start, g.chunk_bytes + 4, w->chunk_buf) < 0)
            return w_fail_h5(w, "write", dpath);
    } while (grid_next(&g));
    return 0;
}

static int write_data(writer *w, hid_t ds, const char *dpath, hid_t ftype, hid_t mtype,
                      int ndim, const hsize_t *dims, const void *data) {
    if (nelems(ndim, dims) == 0) return 0;
    if (H5Tequal(ftype, mtype) > 0)
        return write_chunks(w, ds, dpath, ndim, dims, H5Tget_size(ftype), data);
    /* a big-endian host: HDF5 converts, through its own pipeline */
    if (H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        return w_fail_h5(w, "write", dpath);
    return 0;
}

/* An empty dataset has no chunk to checksum (and HDF5 refuses a chunk larger than a
 * zero extent), so it stays contiguous. */
static int put_dataset(writer *w, const char *dpath, hid_t ftype, hid_t mtype, int ndim,
                       const hsize_t *dims, const void *data) {
    int empty = nelems(ndim, dims) == 0;
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = empty ? H5Pcreate(H5P_DATASET_CREATE)
                       : checksummed_dcpl(ndim, dims, H5Tget_size(ftype));
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dapl = H5Pcreate(H5P_DATASET_ACCESS);
    hid_t ds = -1;
    int rc = 0;
    /* no chunk cache (for the H5Dwrite path; H5Dwrite_chunk bypasses it anyway): every
     * chunk goes to the disk inside the write call, so that a write error shows up there,
     * where it can be handled, and not in a later flush */
    if (space < 0 || dcpl < 0 || lcpl < 0 || dapl < 0 ||
        H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_chunk_cache(dapl, 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT) < 0 ||
        (ds = H5Dcreate2(w->file, dpath, ftype, space, lcpl, dcpl, dapl)) < 0)
        rc = w_fail_h5(w, "create dataset", dpath);
    else
        rc = write_data(w, ds, dpath, ftype, mtype, ndim, dims, data);
    if (ds >= 0) H5Dclose(ds);
    if (dapl >= 0) H5Pclose(dapl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc;
}

/* The file type (little-endian, as the tensors) and the memory type of a field's values. */
static void field_types(ckpt_type type, hid_t *ftype, hid_t *mtype) {
    switch (type) {
    case CKPT_I32: *ftype = H5T_STD_I32LE, *mtype = H5T_NATIVE_INT32; break;
    case CKPT_I64: *ftype = H5T_STD_I64LE, *mtype = H5T_NATIVE_INT64; break;
    case CKPT_F64: *ftype = H5T_IEEE_F64LE, *mtype = H5T_NATIVE_DOUBLE; break;
    case CKPT_U64: *ftype = H5T_STD_U64LE, *mtype = H5T_NATIVE_UINT64; break;
    default: *ftype = H5T_STD_U8LE, *mtype = H5T_NATIVE_UINT8; break;
    }
}

/* A scalar field: an attribute of its group, which is made if this is its first field. */
static int put_scalar_field(writer *w, const ckpt_field *f, hid_t ftype, hid_t mtype) {
    char gpath[PATH_LEN];
    snprintf(gpath, sizeof gpath, "/%s", f->group);
    hid_t g = H5Lexists(w->file, gpath, H5P_DEFAULT) > 0
                  ? H5Gopen2(w->file, gpath, H5P_DEFAULT)
                  : H5Gcreate2(w->file, gpath, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return w_fail_h5(w, "create group", gpath);
    int rc = put_attr_at(w, g, f->name, ftype, mtype, f->data);
    H5Gclose(g);
    return rc;
}

static int write_fields(writer *w, const ckpt_meta *m) {
    for (int i = 0; i < m->nfields; i++) {
        const ckpt_field *f = &m->fields[i];
        hid_t ftype, mtype;
        field_types(f->type, &ftype, &mtype);
        char dpath[PATH_LEN];
        snprintf(dpath, sizeof dpath, "/%s/%s", f->group, f->name);
        hsize_t dims[2] = {f->ndim > 0 ? (hsize_t)f->dims[0] : 1, f->ndim > 1 ? (hsize_t)f->dims[1] : 1};
        int rc = f->ndim == 0 ? put_scalar_field(w, f, ftype, mtype)
                              : put_dataset(w, dpath, ftype, mtype, f->ndim, dims, f->data);
        if (rc) return -1;
    }
    return 0;
}

/* The fault tests' crash in the middle of a checkpoint: what was written so far reaches the
 * file, then the process dies without any cleanup. */
static void crash_now(writer *w) {
    H5Fflush(w->file, H5F_SCOPE_GLOBAL);
    raise(SIGKILL);
}

static int write_tensors(writer *w, const ckpt_tensor *ts, int n) {
    int crash = getenv(CRASH_ENV) != NULL;
    for (int i = 0; i <= n; i++) {
        if (crash && i == n / 2) crash_now(w);
        if (i == n) break;
        const ckpt_tensor *t = &ts[i];
        char dpath[PATH_LEN];
        snprintf(dpath, sizeof dpath, "/%s/%s", t->group, t->name);
        hsize_t dims[4];
        for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
        if (put_dataset(w, dpath, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims, t->data))
            return -1;
    }
    return 0;
}

/* File access for writing and reading checkpoints. No file locks: the one writer makes the
 * file under a temporary name and readers only ever see it complete, so HDF5's locks guard
 * nothing here, while they fail on file systems without flock (NFS, some Lustre mounts).
 * For writing, format 1.8 (superblock v2, object header v2) puts a checksum on the
 * metadata too, so the attributes are protected like the data, and h5py and h5dump still
 * read it; a strong close degree makes H5Fclose really close the file, so that the fsync
 * after it sees every byte. */
static hid_t make_fapl(int writing) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    int ok = 1;
#if H5_VERSION_GE(1, 10, 7)
    ok = H5Pset_file_locking(fapl, 0, 1) >= 0;
#endif
    if (ok && writing)
        ok = H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0 &&
             H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0;
    if (!ok) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

static hid_t create_file(writer *w) {
    hid_t fapl = make_fapl(1);
    hid_t f = -1;
    if (fapl >= 0) f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) fail_h5(w->err, w->errlen, w->tmp, "create", NULL);
    if (fapl >= 0) H5Pclose(fapl);
    return f;
}

static void abandon_file(writer *w) {
    detach_from_disk(w);
    H5Fclose(w->file);
    w->file = -1;
}

/* The final flush writes the metadata HDF5 has cached (object headers, chunk indexes). If
 * the disk cannot take it, say so now: once a flush has failed half-way, HDF5 1.10 can no
 * longer close the file cleanly, detached or not (see detach_from_disk), and the process
 * would crash at exit. Twice the cache size leaves room for what it does not count (the
 * superblock, free-space records). */
static int room_for_metadata(writer *w) {
    size_t max_size, min_clean, cur_size;
    int nentries;
    struct statvfs fs;
    if (H5Fget_mdc_size(w->file, &max_size, &min_clean, &cur_size, &nentries) < 0 ||
        statvfs(w->dir, &fs) != 0)
        return 0; /* cannot tell: let the flush find out */
    unsigned long long need = 2ull * cur_size + (64u << 10);
    unsigned long long avail = (unsigned long long)fs.f_bavail * fs.f_frsize;
    if (avail >= need) return 0;
    return ds_fail(w->err, w->errlen, "%s: flush: %s (%llu KiB free, the metadata needs %llu KiB)",
                w->tmp, strerror(ENOSPC), avail >> 10, need >> 10);
}

static int close_file(writer *w) {
    if (room_for_metadata(w) != 0) {
        abandon_file(w);
        return -1;
    }
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0) {
        int rc = w_fail_h5(w, "flush", NULL);
        abandon_file(w);
        return rc;
    }
    /* after a successful flush the close has next to nothing left to write */
    herr_t c = H5Fclose(w->file);
    w->file = -1;
    return c < 0 ? fail_h5(w->err, w->errlen, w->tmp, "close", NULL) : 0;
}

/* The whole temporary file, on disk. */
static int write_temp(writer *w, const ckpt_meta *m, const ckpt_tensor *ts, int n) {
    w->file = create_file(w);
    if (w->file < 0) return -1;
    if (write_attrs(w, m) || write_fields(w, m) || write_tensors(w, ts, n)) {
        abandon_file(w);
        return -1;
    }
    if (close_file(w)) return -1;
    return fsync_path(w->tmp, 0, w->err, w->errlen);
}

/* ---- writing: publishing, `latest`, pruning ------------------------------------------ */

static int write_latest(const char *dir, const char *name, char *err, size_t errlen) {
    char tmp[PATH_LEN], path[PATH_LEN], line[PATH_LEN];
    if (join(tmp, dir, LATEST_TMP, err, errlen) || join(path, dir, "latest", err, errlen))
        return -1;
    int len = snprintf(line, sizeof line, "%s.h5\n", name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ds_fail(err, errlen, "%s: create: %s", tmp, strerror(errno));
    const char *op = NULL;
    if (write_all(fd, line, (size_t)len) != 0)
        op = "write";
    else if (fsync(fd) != 0)
        op = "fsync";
    int e = errno;
    if (close(fd) != 0 && !op) {
        op = "close";
        e = errno;
    }
    if (!op && rename(tmp, path) != 0) {
        op = "rename to latest";
        e = errno;
    }
    if (op) {
        unlink(tmp);
        return ds_fail(err, errlen, "%s: %s: %s", tmp, op, strerror(e));
    }
    return fsync_path(dir, 1, err, errlen);
}

/* Pruning keeps the file just written and the keep-1 others of its series (same name up to
 * the trailing step number) with the highest steps. Files of other series, and files with
 * no step in their name, are never touched; nor is the file `latest` names. When steps only
 * grow this is exactly "the newest `keep` by step"; after a rollback it never deletes the
 * checkpoint just written. A file that cannot be deleted is a warning: the checkpoint itself
 * is safe, and failing the write over it would stop the training for nothing. */
static void prune(const char *dir, const char *name, int keep) {
    size_t plen;
    if (keep <= 0 || stem_step(name, strlen(name), &plen) < 0) return;
    char latest[256] = "", path[PATH_LEN], mine[PATH_LEN];
    read_latest(dir, latest, sizeof latest);
    snprintf(mine, sizeof mine, "%s.h5", name);
    int count, kept = 1;
    ckpt_file *files = list_checkpoints(dir, &count);
    for (int i = 0; i < count; i++) {
        const char *f = files[i].name;
        size_t fplen;
        if (strcmp(f, mine) == 0 || strcmp(f, latest) == 0) continue;
        if (stem_step(f, strlen(f) - 3, &fplen) < 0 || fplen != plen || strncmp(f, name, plen))
            continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        if (join(path, dir, f, NULL, 0) == 0 && unlink(path) != 0)
            fprintf(stderr, "dtrain: warning: %s: cannot delete old checkpoint: %s\n", path,
                    strerror(errno));
    }
    free_checkpoints(files, count);
}

/* Temporary files of attempts that crashed. One writer per directory (rank 0), so any that
 * remain once a checkpoint has been published are stale. */
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[PATH_LEN];
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        int ours = nm[0] == '.' && (has_suffix(nm, ".h5.tmp") || strcmp(nm, LATEST_TMP) == 0);
        if (ours && join(path, dir, nm, NULL, 0) == 0) unlink(path);
    }
    closedir(d);
}

/* A name for one path component: a file, a group or a dataset. */
static int valid_name(const char *s) {
    return s && s[0] && strlen(s) < 256 && !strchr(s, '/') && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

static int check_meta(const char *dir, const ckpt_meta *m, char *err, size_t errlen) {
    if (!m) return ds_fail(err, errlen, "%s: checkpoint without metadata", dir);
    if (m->nfields < 0 || (m->nfields > 0 && !m->fields)) return ds_fail(err, errlen, "%s: bad field list", dir);
    for (int i = 0; i < m->nfields; i++) {
        const ckpt_field *f = &m->fields[i];
        long long n = 1;
        for (int d = 0; d < f->ndim && d < 2; d++) n *= f->dims[d];
        if (!valid_name(f->group) || !valid_name(f->name) || f->ndim < 0 || f->ndim > 2 || n < 0 ||
            (n > 0 && !f->data))
            return ds_fail(err, errlen, "%s: bad field '%s/%s'", dir, f->group ? f->group : "(null)",
                        f->name ? f->name : "(null)");
    }
    return 0;
}

static int check_tensors(const char *dir, const ckpt_tensor *ts, int n, char *err, size_t errlen) {
    if (n < 0 || (n > 0 && !ts)) return ds_fail(err, errlen, "%s: bad tensor list", dir);
    for (int i = 0; i < n; i++) {
        const ckpt_tensor *t = &ts[i];
        if (!valid_name(t->group) || !valid_name(t->name))
            return ds_fail(err, errlen, "%s: tensor %d: bad name '%s/%s'", dir, i,
                        t->group ? t->group : "(null)", t->name ? t->name : "(null)");
        if (t->ndim < 1 || t->ndim > 4)
            return ds_fail(err, errlen, "%s: %s/%s: ndim %d, expected 1 to 4", dir, t->group, t->name,
                        t->ndim);
        long long n_el = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                return ds_fail(err, errlen, "%s: %s/%s: negative dimension", dir, t->group, t->name);
            n_el *= t->shape[d];
        }
        if (n_el > 0 && !t->data)
            return ds_fail(err, errlen, "%s: %s/%s: data is NULL", dir, t->group, t->name);
    }
    return 0;
}

static int make_paths(writer *w, char *err, size_t errlen) {
    if (!valid_name(w->name) || w->name[0] == '.')
        return ds_fail(err, errlen, "%s: bad checkpoint name '%s'", w->dir, w->name ? w->name : "");
    int a = snprintf(w->final, PATH_LEN, "%s/%s.h5", w->dir, w->name);
    int b = snprintf(w->tmp, PATH_LEN, "%s/.%s.h5.tmp", w->dir, w->name);
    if (a < 0 || a >= PATH_LEN || b < 0 || b >= PATH_LEN)
        return ds_fail(err, errlen, "%s/%s: path too long", w->dir, w->name);
    return 0;
}

/* The temporary file on disk, then under its real name, durably. */
static int write_and_rename(writer *w, const ckpt_meta *m, const ckpt_tensor *ts, int n) {
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = write_temp(w, m, ts, n);
    h5_quiet_end(&q);
    free(w->chunk_buf);
    w->chunk_buf = NULL;
    if (rc == 0 && rename(w->tmp, w->final) != 0)
        rc = ds_fail(w->err, w->errlen, "%s: rename from %s: %s", w->final, w->tmp, strerror(errno));
    if (rc != 0) {
        unlink(w->tmp);
        return -1;
    }
    return fsync_path(w->dir, 1, w->err, w->errlen);
}

int ckpt_write(const char *dir, const char *name, const ckpt_meta *meta,
               const ckpt_tensor *tensors, int ntensors, int keep, char *err, size_t errlen) {
    writer w = {.dir = dir, .name = name, .file = -1, .err = err, .errlen = errlen};
    if (!dir || !dir[0]) return ds_fail(err, errlen, "checkpoint directory not set");
    if (make_paths(&w, err, errlen) || check_meta(dir, meta, err, errlen) ||
        check_tensors(dir, tensors, ntensors, err, errlen) || mkdir_p(dir, err, errlen))
        return -1;
    if (write_and_rename(&w, meta, tensors, ntensors) || write_latest(dir, name, err, errlen))
        return -1;
    prune(dir, name, keep);
    remove_stale_temps(dir);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------- */

struct ckpt {
    char *path;
    hid_t file;
    unsigned long long file_size; /* bounds what the datasets may claim to store */
    ckpt_meta meta;
    char *config, *metrics; /* what meta's borrowed pointers point at */
    uint8_t *scratch; /* one chunk (and its checksum), for verifying and reading */
    size_t scratch_len;
    char *err;
    size_t errlen;
    /* datasets under each top-level group, tallied while opening verifies them */
    struct {
        char name[64];
        long n;
    } groups[32];
    int ngroups, cur_group; /* cur_group: the tally of the group being walked, or -1 */
};

static int c_fail_h5(ckpt *c, const char *op, const char *object) {
    return fail_h5(c->err, c->errlen, c->path, op, object);
}

static hid_t open_attr(ckpt *c, const char *key) {
    htri_t ex = H5Aexists(c->file, key);
    if (ex < 0) return c_fail_h5(c, "read attribute", key);
    if (ex == 0) return ds_fail(c->err, c->errlen, "%s: attribute '%s' missing", c->path, key);
    hid_t a = H5Aopen(c->file, key, H5P_DEFAULT);
    if (a < 0) return c_fail_h5(c, "open attribute", key);
    return a;
}

/* A numeric attribute of one value, converted by HDF5 to mtype (an integer type here): an
 * array would be read past `out`, a float would be truncated into a different number. */
static int get_attr(ckpt *c, const char *key, hid_t mtype, void *out) {
    hid_t a = open_attr(c, key);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a), ft = H5Aget_type(a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int rc;
    if (np != 1)
        rc = ds_fail(c->err, c->errlen, "%s: attribute '%s': %lld values, expected one", c->path, key, (long long)np);
    else if (ft < 0 || H5Tget_class(ft) != H5Tget_class(mtype))
        rc = ds_fail(c->err, c->errlen, "%s: attribute '%s': not an integer", c->path, key);
    else
        rc = H5Aread(a, mtype, out) < 0 ? c_fail_h5(c, "read attribute", key) : 0;
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* A string attribute, fixed or variable length (h5py writes the latter), malloc'd. */
static int read_str(ckpt *c, hid_t a, hid_t ftype, const char *key, char **out) {
    int rc = 0;
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    /* one string: an array of them would be read past the buffer */
    if (np != 1) return ds_fail(c->err, c->errlen, "%s: attribute '%s': %lld strings, expected one", c->path, key,
                                (long long)np);
    if (H5Tis_variable_str(ftype) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *s = NULL;
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(ftype)) < 0 || H5Aread(a, mt, &s) < 0)
            rc = c_fail_h5(c, "read attribute", key);
        else
            *out = xstrdup(s ? s : "");
        if (s) H5free_memory(s);
        if (mt >= 0) H5Tclose(mt);
        return rc;
    }
    size_t n = H5Tget_size(ftype);
    char *s = xcalloc(n + 1, 1); /* +1: a NULLPAD or SPACEPAD string has no terminator */
    if (H5Aread(a, ftype, s) < 0) {
        free(s);
        return c_fail_h5(c, "read attribute", key);
    }
    /* the text ends at its first NUL; past it only padding: text hidden behind a NUL would
     * be silently dropped (a config that is not the one that trained) */
    size_t len = strlen(s);
    for (size_t i = len; i < n; i++)
        if (s[i] != '\0') {
            free(s);
            return ds_fail(c->err, c->errlen, "%s: attribute '%s': a NUL byte at offset %zu inside the text",
                           c->path, key, len);
        }
    *out = s;
    return 0;
}

static int get_str_attr(ckpt *c, const char *key, char **out) {
    hid_t a = open_attr(c, key);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING)
        rc = ds_fail(c->err, c->errlen, "%s: attribute '%s' is not a string", c->path, key);
    else
        rc = read_str(c, a, ft, key, out);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int check_version(ckpt *c) {
    htri_t ex = H5Aexists(c->file, "format_version");
    if (ex < 0) return c_fail_h5(c, "read attribute", "format_version");
    if (ex == 0)
        return ds_fail(c->err, c->errlen, "%s: not a dtrain checkpoint (no format_version attribute)",
                    c->path);
    int v;
    if (get_attr(c, "format_version", H5T_NATIVE_INT, &v)) return -1;
    if (v < 1 || v > CKPT_FORMAT_VERSION)
        return ds_fail(c->err, c->errlen, "%s: format_version %d, expected 1 to %d", c->path, v,
                    CKPT_FORMAT_VERSION);
    c->meta.format_version = v;
    return 0;
}

static int read_attrs(ckpt *c) {
    ckpt_meta *m = &c->meta;
    char *job = NULL;
    if (check_version(c) || get_str_attr(c, "job", &job)) return -1;
    snprintf(m->job, sizeof m->job, "%s", job);
    free(job);
    if (get_str_attr(c, "config", &c->config) || get_str_attr(c, "metrics", &c->metrics)) return -1;
    m->config_text = c->config;
    m->metrics_json = c->metrics;
    return 0;
}

/* Opens dpath, checks that it is a dataset of rank `ndim`, and fills dims. */
static hid_t open_dataset(ckpt *c, const char *dpath, int ndim, hsize_t *dims) {
    if (H5Lexists(c->file, dpath, H5P_DEFAULT) <= 0)
        return ds_fail(c->err, c->errlen, "%s: dataset %s missing", c->path, dpath);
    hid_t ds = H5Dopen2(c->file, dpath, H5P_DEFAULT);
    if (ds < 0) return c_fail_h5(c, "open", dpath);
    hid_t sp = H5Dget_space(ds);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    int ok = nd == ndim && H5Sget_simple_extent_dims(sp, dims, NULL) == ndim;
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        H5Dclose(ds);
        return ds_fail(c->err, c->errlen, "%s: %s: expected %d dimensions, found %d", c->path, dpath,
                    ndim, nd);
    }
    return ds;
}

/* Reads all of ds (through HDF5's own reader) and closes it. */
static int read_all(ckpt *c, hid_t ds, const char *dpath, hid_t mtype, void *out) {
    int rc = 0;
    if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = c_fail_h5(c, "read", dpath);
    H5Dclose(ds);
    return rc;
}

/* ---- verification: every dataset read once, through its checksum ---------------------- */

/* The block shape to read: the dataset's own chunks (each read is one chunk, checked once),
 * or for a contiguous dataset the shape its chunks would have had. */
static void block_dims(hid_t ds, int ndim, const hsize_t *dims, size_t elem, hsize_t *block) {
    hid_t dcpl = H5Dget_create_plist(ds);
    int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
                  H5Pget_chunk(dcpl, ndim, block) == ndim;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (!chunked) chunk_dims(ndim, dims, elem, block);
}

/* Reads the block at g->start of the dataset's grid of blocks into the scratch buffer. */
static int read_block(ckpt *c, hid_t ds, hid_t type, hid_t fspace, const char *dpath, const chunk_grid *g) {
    hsize_t count[MAX_RANK];
    for (int d = 0; d < g->ndim; d++) {
        hsize_t left = g->dims[d] - g->start[d];
        count[d] = left < g->chunk[d] ? left : g->chunk[d];
    }
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, g->start, NULL, count, NULL) < 0)
        return c_fail_h5(c, "read", dpath);
    hid_t mspace = H5Screate_simple(g->ndim, count, NULL);
    if (mspace < 0) return c_fail_h5(c, "read", dpath);
    int rc = 0;
    if (H5Dread(ds, type, mspace, fspace, H5P_DEFAULT, c->scratch) < 0) rc = c_fail_h5(c, "read", dpath);
    H5Sclose(mspace);
    return rc;
}

static void ensure_scratch(ckpt *c, size_t need) {
    if (need <= c->scratch_len) return;
    free(c->scratch);
    c->scratch = xmalloc(need);
    c->scratch_len = need;
}

/* Every block read once through HDF5's reader (and so its filters), in the order of the
 * same grid walk as the raw path; the blocks need not be runs of the array here. */
static int verify_blocks(ckpt *c, hid_t ds, hid_t type, hid_t fspace, const char *dpath) {
    size_t elem = H5Tget_size(type);
    int ndim = H5Sget_simple_extent_ndims(fspace);
    if (ndim < 0 || ndim > MAX_RANK || elem == 0) return c_fail_h5(c, "read", dpath);
    if (ndim == 0) { /* a scalar: one element, no selection */
        ensure_scratch(c, elem);
        if (H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, c->scratch) < 0)
            return c_fail_h5(c, "read", dpath);
        return 0;
    }
    hsize_t dims[MAX_RANK], block[MAX_RANK];
    H5Sget_simple_extent_dims(fspace, dims, NULL);
    if (nelems(ndim, dims) == 0) return 0;
    block_dims(ds, ndim, dims, elem, block);
    chunk_grid g;
    grid_init(&g, ndim, dims, block, elem); /* whether blocks are runs does not matter here */
    ensure_scratch(c, g.chunk_bytes);
    do {
        if (read_block(c, ds, type, fspace, dpath, &g)) return -1;
    } while (grid_next(&g));
    return 0;
}

/* The chunk grid of a dataset that the raw path can read: chunked, Fletcher32 its only
 * filter, chunks that are runs of the array (all that ckpt_write makes). -1 otherwise. */
static int raw_grid(hid_t ds, hid_t type, hid_t fspace, chunk_grid *g) {
    hsize_t dims[MAX_RANK], chunk[MAX_RANK];
    int ndim = H5Sget_simple_extent_ndims(fspace);
    if (ndim < 1 || ndim > MAX_RANK || H5Sget_simple_extent_dims(fspace, dims, NULL) != ndim)
        return -1;
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return -1;
    unsigned flags;
    size_t ncd = 0;
    unsigned opts = 1;
    /* H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS would leave edge chunks without a checksum */
    int ok = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, ndim, chunk) == ndim &&
             H5Pget_chunk_opts(dcpl, &opts) >= 0 && opts == 0 && H5Pget_nfilters(dcpl) == 1 &&
             H5Pget_filter2(dcpl, 0, &flags, &ncd, NULL, 0, NULL, NULL) == H5Z_FILTER_FLETCHER32;
    H5Pclose(dcpl);
    size_t elem = H5Tget_size(type);
    return ok && elem > 0 && grid_init(g, ndim, dims, chunk, elem) == 0 ? 0 : -1;
}

/* Every chunk read raw and checked against its checksum; into dst too unless it is NULL. */
static int read_chunks(ckpt *c, hid_t ds, const char *dpath, chunk_grid *g, void *dst) {
    ensure_scratch(c, g->chunk_bytes + 4);
    do {
        hsize_t stored = 0;
        uint32_t mask = 0;
        if (H5Dget_chunk_storage_size(ds, g->start, &stored) < 0)
            return c_fail_h5(c, "read", dpath);
        if (stored != g->chunk_bytes + 4)
            return ds_fail(c->err, c->errlen, "%s: %s: a chunk of %llu bytes, expected %zu (the "
                        "file is corrupt)", c->path, dpath, (unsigned long long)stored,
                        g->chunk_bytes + 4);
        if (H5Dread_chunk(ds, H5P_DEFAULT, g->start, &mask, c->scratch) < 0)
            return c_fail_h5(c, "read", dpath);
        if (mask != 0 || !checksum_ok(c->scratch, g->chunk_bytes))
            return ds_fail(c->err, c->errlen, "%s: %s: checksum mismatch (the file is corrupt)",
                        c->path, dpath);
        if (dst) {
            size_t first, count;
            grid_run(g, &first, &count);
            memcpy((char *)dst + first * g->elem, c->scratch, count * g->elem);
        }
    } while (grid_next(g));
    return 0;
}

/* ---- what a dataset declares against what the file stores ---------------------------
 *
 * Verification reads every byte of every dataset, so before it reads one it checks that
 * the bytes the dataset declares (its shape times its element size, in overflow-checked
 * 64-bit arithmetic) are really stored in this file: a contiguous dataset's storage is all
 * allocated; every chunk of a chunked one is written, and their stored bytes, at least the
 * declared ones, fit in the file. So the work is bounded by the file's size, and data never
 * written (which HDF5 would read back as fill values) is refused instead of trained on.
 * Data in other files (external storage, virtual datasets) and compressed chunks (whose
 * expansion the file's size does not bound) are refused: dtrain writes neither. */

static const char *class_name(H5T_class_t cls) {
    switch (cls) {
    case H5T_INTEGER: return "integers";
    case H5T_FLOAT: return "floats";
    case H5T_STRING: return "strings";
    case H5T_COMPOUND: return "compound records";
    case H5T_ENUM: return "enums";
    case H5T_ARRAY: return "arrays";
    case H5T_VLEN: return "variable-length sequences";
    case H5T_REFERENCE: return "references";
    case H5T_OPAQUE: return "opaque bytes";
    case H5T_BITFIELD: return "bitfields";
    case H5T_TIME: return "times";
    default: return "an unknown type";
    }
}

/* a * b, or -1 when it does not fit in 63 bits */
static int mul_ok(unsigned long long a, unsigned long long b, unsigned long long *out) {
    return !__builtin_mul_overflow(a, b, out) && *out <= (unsigned long long)INT64_MAX ? 0 : -1;
}

static int chunked_storage(ckpt *c, hid_t ds, hid_t dcpl, hid_t fspace, int ndim, const hsize_t *dims,
                           unsigned long long elem, unsigned long long bytes, const char *dpath) {
    hsize_t chunk[MAX_RANK];
    if (H5Pget_chunk(dcpl, ndim, chunk) != ndim) return c_fail_h5(c, "read the chunk shape of", dpath);
    unsigned long long want = 1, cbytes = elem;
    for (int d = 0; d < ndim; d++) {
        if (chunk[d] == 0) return ds_fail(c->err, c->errlen, "%s: %s: a chunk dimension of 0", c->path, dpath);
        if (mul_ok(want, (dims[d] + chunk[d] - 1) / chunk[d], &want) || mul_ok(cbytes, chunk[d], &cbytes))
            return ds_fail(c->err, c->errlen, "%s: %s: its chunk grid overflows 64 bits", c->path, dpath);
    }
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags;
        size_t ncd = 0;
        char name[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, sizeof name, name, NULL);
        if (id != H5Z_FILTER_FLETCHER32)
            return ds_fail(c->err, c->errlen, "%s: %s: filter %d (%s) on its chunks, expected none but "
                           "Fletcher32 (checkpoints are not compressed)", c->path, dpath, (int)id,
                           name[0] ? name : "unknown");
    }
    hsize_t have = 0;
    /* (HDF5 1.10 wants the dataspace itself here; H5S_ALL is refused) */
    if (H5Sselect_all(fspace) < 0 || H5Dget_num_chunks(ds, fspace, &have) < 0) return c_fail_h5(c, "count the chunks of", dpath);
    if (have != want)
        return ds_fail(c->err, c->errlen, "%s: %s: %llu of its %llu chunks are stored (the rest were never "
                       "written)", c->path, dpath, (unsigned long long)have, want);
    unsigned long long stored = H5Dget_storage_size(ds);
    if (stored < bytes || stored > c->file_size)
        return ds_fail(c->err, c->errlen, "%s: %s: its chunks claim %llu bytes of storage, expected %llu to "
                       "%llu (the data declared, the file's size)", c->path, dpath, stored, bytes, c->file_size);
    (void)cbytes;
    return 0;
}

static int check_storage(ckpt *c, hid_t ds, hid_t type, hid_t fspace, const char *dpath) {
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT && cls != H5T_STRING)
        return ds_fail(c->err, c->errlen, "%s: %s: a dataset of %s, expected numbers", c->path, dpath,
                       class_name(cls));
    int ndim = H5Sget_simple_extent_ndims(fspace);
    hsize_t dims[MAX_RANK];
    if (ndim < 0 || ndim > MAX_RANK || H5Sget_simple_extent_dims(fspace, dims, NULL) != ndim)
        return c_fail_h5(c, "read the shape of", dpath);
    unsigned long long elem = H5Tget_size(type), bytes = elem;
    for (int d = 0; d < ndim; d++)
        if (mul_ok(bytes, dims[d], &bytes))
            return ds_fail(c->err, c->errlen, "%s: %s: its shape declares more than 2^63 bytes", c->path, dpath);
    if (bytes > c->file_size)
        return ds_fail(c->err, c->errlen, "%s: %s: declares %llu bytes of data, more than the file's %llu "
                       "(data never written, or a truncated copy)", c->path, dpath, bytes, c->file_size);
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return c_fail_h5(c, "read the layout of", dpath);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    int rc = 0;
    if (H5Pget_external_count(dcpl) != 0)
        rc = ds_fail(c->err, c->errlen, "%s: %s: its data is in external files, expected in the checkpoint",
                     c->path, dpath);
    else if (layout == H5D_CHUNKED)
        rc = ndim < 1 ? c_fail_h5(c, "read the layout of", dpath)
                      : chunked_storage(c, ds, dcpl, fspace, ndim, dims, elem, bytes, dpath);
    else if (layout == H5D_CONTIGUOUS) {
        unsigned long long stored = H5Dget_storage_size(ds);
        if (stored != bytes)
            rc = ds_fail(c->err, c->errlen, "%s: %s: %llu of its %llu bytes are stored (the rest were never "
                         "written)", c->path, dpath, stored, bytes);
    } else if (layout != H5D_COMPACT)
        rc = ds_fail(c->err, c->errlen, "%s: %s: a virtual dataset (data in other files), expected its data "
                     "in the checkpoint", c->path, dpath);
    H5Pclose(dcpl);
    return rc;
}

static int verify_dataset(ckpt *c, hid_t ds, const char *dpath) {
    hid_t type = H5Dget_type(ds), fspace = H5Dget_space(ds);
    chunk_grid g;
    int rc;
    if (type < 0 || fspace < 0)
        rc = c_fail_h5(c, "read", dpath);
    else if (H5Tis_variable_str(type) > 0)
        rc = 0; /* not ours, never read, and nothing a checksum protects */
    else if (H5Sget_simple_extent_type(fspace) == H5S_NULL)
        rc = 0;
    else if (check_storage(c, ds, type, fspace, dpath) != 0)
        rc = -1;
    else if (H5Sget_simple_extent_npoints(fspace) == 0)
        rc = 0;
    else if (h5_check_chunk_sizes(ds, c->path, dpath, c->err, c->errlen) != 0)
        rc = -1;
    else if (raw_grid(ds, type, fspace, &g) == 0)
        rc = read_chunks(c, ds, dpath, &g, NULL);
    else
        rc = verify_blocks(c, ds, type, fspace, dpath);
    if (fspace >= 0) H5Sclose(fspace);
    if (type >= 0) H5Tclose(type);
    return rc;
}

/* Walks the group by link index (H5Oopen + H5Iget_type: the same calls in HDF5 1.8 to 1.14,
 * unlike the visit functions, whose signatures changed). */
static int verify_group(ckpt *c, hid_t grp, const char *prefix, int depth) {
    H5G_info_t gi;
    if (H5Gget_info(grp, &gi) < 0) return c_fail_h5(c, "list group", prefix[0] ? prefix : "/");
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[1024], path[PATH_LEN];
        if (H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return c_fail_h5(c, "list group", prefix[0] ? prefix : "/");
        if (snprintf(path, sizeof path, "%s/%s", prefix, name) >= (int)sizeof path)
            return ds_fail(c->err, c->errlen, "%s: %s/%s: path too long", c->path, prefix, name);
        hid_t obj = H5Oopen(grp, name, H5P_DEFAULT);
        if (obj < 0) return c_fail_h5(c, "open", path);
        H5I_type_t kind = H5Iget_type(obj);
        int rc = 0;
        if (kind == H5I_GROUP && depth == 0) { /* a new tally, for ckpt_count */
            int g = c->ngroups < 32 && strlen(name) < sizeof c->groups[0].name ? c->ngroups++ : -1;
            if (g >= 0) {
                strcpy(c->groups[g].name, name);
                c->groups[g].n = 0;
            }
            c->cur_group = g;
        }
        if (kind == H5I_GROUP && depth < 16) rc = verify_group(c, obj, path, depth + 1);
        else if (kind == H5I_DATASET) {
            rc = verify_dataset(c, obj, path);
            if (depth > 0 && c->cur_group >= 0) c->groups[c->cur_group].n++;
        }
        H5Oclose(obj);
        if (rc) return -1;
    }
    return 0;
}

static int open_file(ckpt *c) {
    hid_t fapl = make_fapl(0);
    if (fapl >= 0) c->file = H5Fopen(c->path, H5F_ACC_RDONLY, fapl);
    char why[256];
    h5_error_reason(why, sizeof why); /* before H5Pclose clears the error stack */
    if (fapl >= 0) H5Pclose(fapl);
    if (c->file < 0)
        return ds_fail(c->err, c->errlen, "%s: cannot open as HDF5: %s", c->path, why);
    struct stat st;
    if (stat(c->path, &st) != 0) return ds_fail(c->err, c->errlen, "%s: stat: %s", c->path, strerror(errno));
    c->file_size = (unsigned long long)st.st_size;
    /* the whole file is about to be read: let the kernel read ahead while we checksum */
    void *handle = NULL;
    if (H5Fget_vfd_handle(c->file, H5P_DEFAULT, &handle) >= 0 && handle)
        posix_fadvise(*(int *)handle, 0, 0, POSIX_FADV_WILLNEED);
    return 0;
}

/* A checkpoint directory, or its `latest` file, stands for the checkpoint `latest` names:
 * the resolved path in out (0), or -1 when path is neither. */
static int resolve_latest(const char *path, char out[PATH_LEN]) {
    struct stat st;
    char dir[PATH_LEN], name[256];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof dir || stat(path, &st) != 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        memcpy(dir, path, n + 1);
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (strcmp(base, "latest") != 0) return -1;
        size_t dn = (size_t)(base - path);
        memcpy(dir, path, dn);
        dir[dn] = '\0';
        if (dn == 0) memcpy(dir, ".", 2);
    }
    if (read_latest(dir, name, sizeof name) != 0) return -1;
    return join(out, dir, name, NULL, 0);
}

ckpt *ckpt_open(const char *path, char *err, size_t errlen) {
    ckpt *c = xcalloc(1, sizeof *c);
    char resolved[PATH_LEN];
    if (path && resolve_latest(path, resolved) == 0) path = resolved;
    c->path = xstrdup(path ? path : "");
    c->file = -1;
    c->err = err;
    c->errlen = errlen;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = open_file(c) || read_attrs(c) || verify_group(c, c->file, "", 0);
    h5_quiet_end(&q);
    c->err = NULL;
    if (rc) {
        ckpt_close(c);
        return NULL;
    }
    return c;
}

const ckpt_meta *ckpt_get_meta(const ckpt *c) { return &c->meta; }

const char *ckpt_path(const ckpt *c) { return c->path; }

static void shape_text(char *buf, size_t len, int ndim, const hsize_t *dims) {
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < ndim && n < len; d++)
        n += (size_t)snprintf(buf + n, len - n, "%s%llu", d ? ", " : "[",
                              (unsigned long long)dims[d]);
    if (n < len) snprintf(buf + n, len - n, "]");
}

static int has_link(hid_t file, const char *group, const char *name) {
    char gpath[PATH_LEN], dpath[PATH_LEN];
    if (!valid_name(group) || !valid_name(name)) return 0;
    snprintf(gpath, sizeof gpath, "/%s", group);
    snprintf(dpath, sizeof dpath, "/%s/%s", group, name);
    /* asked one level at a time: H5Lexists fails, rather than says no, when the group is
     * missing */
    return H5Lexists(file, gpath, H5P_DEFAULT) > 0 && H5Lexists(file, dpath, H5P_DEFAULT) > 0;
}

int ckpt_has(const ckpt *c, const char *group, const char *name) {
    h5_quiet q;
    h5_quiet_begin(&q);
    int yes = has_link(c->file, group, name);
    h5_quiet_end(&q);
    return yes;
}

long ckpt_count(const ckpt *c, const char *group) {
    for (int g = 0; g < c->ngroups; g++)
        if (strcmp(c->groups[g].name, group) == 0) return c->groups[g].n;
    return -1;
}

/* 0 when ds has exactly t's shape; otherwise the message names both shapes. */
static int check_shape(ckpt *c, hid_t ds, const ckpt_tensor *t, const char *dpath) {
    hsize_t got[MAX_RANK], want[4];
    hid_t sp = H5Dget_space(ds);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd >= 0 && nd <= MAX_RANK) H5Sget_simple_extent_dims(sp, got, NULL);
    if (sp >= 0) H5Sclose(sp);
    for (int d = 0; d < t->ndim; d++) want[d] = (hsize_t)t->shape[d];
    int same = nd == t->ndim;
    for (int d = 0; same && d < nd; d++) same = got[d] == want[d];
    if (same) return 0;
    char a[128] = "?", b[128];
    if (nd >= 0 && nd <= MAX_RANK) shape_text(a, sizeof a, nd, got);
    shape_text(b, sizeof b, t->ndim, want);
    return ds_fail(c->err, c->errlen, "%s: %s: shape %s in the checkpoint, expected %s", c->path,
                dpath, a, b);
}

/* Through the raw chunks when the dataset allows it, else through HDF5's reader. */
static int read_floats(ckpt *c, hid_t ds, const char *dpath, float *out) {
    hid_t type = H5Dget_type(ds), fspace = H5Dget_space(ds);
    chunk_grid g;
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    if (cls != H5T_FLOAT) { /* integers would convert, silently, into other weights */
        if (fspace >= 0) H5Sclose(fspace);
        if (type >= 0) H5Tclose(type);
        return ds_fail(c->err, c->errlen, "%s: %s: stored as %s, expected floats", c->path, dpath, class_name(cls));
    }
    int raw = type >= 0 && fspace >= 0 && H5Tequal(type, H5T_NATIVE_FLOAT) > 0 &&
              raw_grid(ds, type, fspace, &g) == 0;
    if (fspace >= 0) H5Sclose(fspace);
    if (type >= 0) H5Tclose(type);
    if (raw) return read_chunks(c, ds, dpath, &g, out);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        return c_fail_h5(c, "read", dpath);
    return 0;
}

static int read_tensor(ckpt *c, const ckpt_tensor *t, const char *dpath) {
    if (!has_link(c->file, t->group, t->name))
        return ds_fail(c->err, c->errlen, "%s: %s: not in the checkpoint", c->path, dpath);
    hid_t ds = H5Dopen2(c->file, dpath, H5P_DEFAULT);
    if (ds < 0) return c_fail_h5(c, "open", dpath);
    long long n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    int rc = check_shape(c, ds, t, dpath);
    if (rc == 0 && n > 0) rc = read_floats(c, ds, dpath, t->data);
    H5Dclose(ds);
    return rc;
}

int ckpt_read(ckpt *c, const ckpt_tensor *t, char *err, size_t errlen) {
    if (t->ndim < 1 || t->ndim > 4)
        return ds_fail(err, errlen, "%s: %s/%s: ndim %d, expected 1 to 4", c->path,
                    t->group ? t->group : "", t->name ? t->name : "", t->ndim);
    char dpath[PATH_LEN];
    snprintf(dpath, sizeof dpath, "/%s/%s", t->group ? t->group : "", t->name ? t->name : "");
    c->err = err;
    c->errlen = errlen;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = read_tensor(c, t, dpath);
    h5_quiet_end(&q);
    c->err = NULL;
    return rc;
}

/* ---- training-state fields ---------------------------------------------------------- */

static unsigned long long state_bytes(ckpt_type type) {
    return type == CKPT_I32 ? 4 : type == CKPT_U8 ? 1 : 8;
}

static hid_t field_mtype(ckpt_type type) {
    hid_t ftype, mtype;
    field_types(type, &ftype, &mtype);
    return mtype;
}

static int field_path(const ckpt_field *f, char *gpath, char *dpath) {
    const char *g = f->group ? f->group : "";
    if (!valid_name(f->name) || (g[0] && !valid_name(g))) return -1;
    /* both names are under 256 bytes (valid_name) */
    snprintf(gpath, PATH_LEN, "/%.255s", g);
    snprintf(dpath, PATH_LEN, "%s%.255s/%.255s", g[0] ? "/" : "", g, f->name);
    return 0;
}

static int has_field(hid_t file, const ckpt_field *f) {
    char gpath[PATH_LEN], dpath[PATH_LEN];
    if (field_path(f, gpath, dpath) != 0) return 0;
    if (f->group && f->group[0] && H5Lexists(file, gpath, H5P_DEFAULT) <= 0) return 0;
    if (f->ndim == 0) return H5Aexists_by_name(file, gpath, f->name, H5P_DEFAULT) > 0;
    return H5Lexists(file, dpath, H5P_DEFAULT) > 0;
}

int ckpt_has_field(const ckpt *c, const ckpt_field *f) {
    h5_quiet q;
    h5_quiet_begin(&q);
    int yes = has_field(c->file, f);
    h5_quiet_end(&q);
    return yes;
}

/* The stored type must be of the field's kind: integers for an integer field (HDF5 would
 * truncate a float into another number), numbers for a float one. Sizes may differ: HDF5
 * converts, clipping what does not fit, and the caller checks the ranges. */
static int check_class(ckpt *c, const ckpt_field *f, hid_t ftype, const char *dpath) {
    H5T_class_t cls = ftype < 0 ? H5T_NO_CLASS : H5Tget_class(ftype);
    int want_float = f->type == CKPT_F64;
    if (cls == H5T_INTEGER || (want_float && cls == H5T_FLOAT)) return 0;
    return ds_fail(c->err, c->errlen, "%s: %s: stored as %s, expected %s", c->path, dpath, class_name(cls),
                   want_float ? "a number" : "integers");
}

static int read_scalar_field(ckpt *c, const ckpt_field *f, const char *gpath, const char *dpath) {
    hid_t a = H5Aopen_by_name(c->file, gpath, f->name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return c_fail_h5(c, "open attribute", dpath);
    hid_t sp = H5Aget_space(a), ft = H5Aget_type(a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    int rc = np != 1 ? ds_fail(c->err, c->errlen, "%s: %s: %lld values, expected a single value", c->path, dpath,
                               (long long)np)
             : check_class(c, f, ft, dpath) != 0                        ? -1
             : H5Aread(a, field_mtype(f->type), f->data) < 0 ? c_fail_h5(c, "read attribute", dpath)
                                                             : 0;
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

/* An array field: its stored shape into f->dims (or checked against them), then its values. */
static int read_array_field(ckpt *c, ckpt_field *f, const char *dpath) {
    hsize_t dims[2] = {0, 0};
    hid_t ds = open_dataset(c, dpath, f->ndim, dims);
    if (ds < 0) return -1;
    hid_t ft = H5Dget_type(ds);
    int bad = check_class(c, f, ft, dpath);
    if (ft >= 0) H5Tclose(ft);
    if (bad) {
        H5Dclose(ds);
        return -1;
    }
    /* the values' bytes in memory, overflow-checked before anything is allocated (opening
     * verified that the file stores every element) */
    unsigned long long n = 1, bytes;
    for (int d = 0; d < f->ndim; d++) {
        if (f->data && (hsize_t)f->dims[d] != dims[d]) {
            H5Dclose(ds);
            return ds_fail(c->err, c->errlen, "%s: %s: dimension %d is %llu, expected %lld", c->path, dpath, d,
                        (unsigned long long)dims[d], (long long)f->dims[d]);
        }
        if (mul_ok(n, dims[d], &n)) {
            H5Dclose(ds);
            return ds_fail(c->err, c->errlen, "%s: %s: its shape overflows 64 bits", c->path, dpath);
        }
        f->dims[d] = (int64_t)dims[d];
    }
    if (mul_ok(n, state_bytes(f->type), &bytes) || bytes > SIZE_MAX / 2) {
        H5Dclose(ds);
        return ds_fail(c->err, c->errlen, "%s: %s: %llu values do not fit in memory", c->path, dpath, n);
    }
    if (!f->data) f->data = xmalloc(bytes > 0 ? (size_t)bytes : 1);
    if (n == 0) {
        H5Dclose(ds);
        return 0;
    }
    return read_all(c, ds, dpath, field_mtype(f->type), f->data);
}

int ckpt_read_field(ckpt *c, ckpt_field *f, char *err, size_t errlen) {
    char gpath[PATH_LEN], dpath[PATH_LEN];
    if (f->ndim < 0 || f->ndim > 2 || field_path(f, gpath, dpath) != 0 || (f->ndim == 0 && !f->data))
        return ds_fail(err, errlen, "%s: bad field '%s'", c->path, f->name ? f->name : "(null)");
    c->err = err;
    c->errlen = errlen;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc;
    if (!has_field(c->file, f))
        rc = ds_fail(err, errlen, "%s: %s %s missing", c->path, f->ndim == 0 ? "attribute" : "dataset", dpath);
    else
        rc = f->ndim == 0 ? read_scalar_field(c, f, gpath, dpath) : read_array_field(c, f, dpath);
    h5_quiet_end(&q);
    c->err = NULL;
    return rc;
}

void ckpt_close(ckpt *c) {
    if (!c) return;
    if (c->file >= 0) {
        h5_quiet q;
        h5_quiet_begin(&q);
        H5Fclose(c->file);
        h5_quiet_end(&q);
    }
    free(c->path);
    free(c->config);
    free(c->metrics);
    free(c->scratch);
    free(c);
}
