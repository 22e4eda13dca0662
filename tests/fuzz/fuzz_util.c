/* fuzz_util.c: see fuzz_util.h. */
#include "fuzz_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint8_t fz_u8(fz_in *in) {
    if (in->n == 0) return 0;
    uint8_t v = *in->p;
    in->p++, in->n--;
    return v;
}

uint16_t fz_u16(fz_in *in) { return (uint16_t)(fz_u8(in) | fz_u8(in) << 8); }
uint32_t fz_u32(fz_in *in) { return fz_u16(in) | (uint32_t)fz_u16(in) << 16; }
uint64_t fz_u64(fz_in *in) { return fz_u32(in) | (uint64_t)fz_u32(in) << 32; }

unsigned fz_pick(fz_in *in, unsigned n) { return fz_u8(in) % n; }

int64_t fz_count(fz_in *in, int64_t def) {
    static const int64_t extremes[] = {0, -1, 1, INT32_MAX, (int64_t)INT32_MAX + 1, UINT32_MAX,
                                       (int64_t)1 << 40, INT64_MAX, INT64_MIN, -2, 65535, 65536};
    uint8_t sel = fz_u8(in);
    if (sel == 0) return def;
    switch (sel % 7) {
    case 0: return def + (int8_t)fz_u8(in);
    case 1: return def + 1;
    case 2: return fz_u8(in);
    case 3: return fz_u16(in);
    case 4: return fz_u32(in);
    case 5: return (int64_t)fz_u64(in);
    default: return extremes[fz_u8(in) % (sizeof extremes / sizeof extremes[0])];
    }
}

const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len) {
    *len = in->n < max ? in->n : max;
    const uint8_t *p = in->p;
    in->p += *len, in->n -= *len;
    return p;
}

char *fz_string(fz_in *in, const char *def, size_t max) {
    if (fz_u8(in) == 0) return strdup(def);
    size_t want = fz_u8(in), len;
    const uint8_t *p = fz_bytes(in, want < max ? want : max, &len);
    char *s = malloc(len + 1);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* ---- scratch files ------------------------------------------------------------------- */

static char scratch_dir[512];

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void remove_scratch(void) {
    if (scratch_dir[0]) remove_tree(scratch_dir);
}

const char *fz_path(const char *name) {
    static char path[1024];
    if (!scratch_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch_dir, sizeof scratch_dir, "%s/dtrain-fuzz-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        if (mkdir(scratch_dir, 0700) != 0) {
            perror(scratch_dir);
            abort();
        }
        atexit(remove_scratch);
    }
    snprintf(path, sizeof path, "%s/%s", scratch_dir, name);
    return path;
}

void fz_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void fz_note(const char *what, const char *err) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("DTRAIN_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", what, err);
}

/* ---- HDF5 ---------------------------------------------------------------------------- */

void fz_h5_init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hid_t fz_h5_create(const char *path) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        fprintf(stderr, "fuzz: cannot create %s\n", path);
        abort();
    }
    return f;
}

static void put_attr(hid_t loc, const char *name, fz_kind kind, int n, int64_t ival, double dval,
                     const char *sval) {
    hid_t space = n == 0 ? H5Screate(H5S_NULL) : n == 1 ? H5Screate(H5S_SCALAR)
                                                         : H5Screate_simple(1, (hsize_t[]){(hsize_t)n}, NULL);
    hid_t ftype = -1, mtype = -1;
    const void *buf = NULL;
    int64_t iv[2] = {ival, ival};
    uint64_t uv[2] = {(uint64_t)ival, (uint64_t)ival};
    int32_t i32[2] = {(int32_t)ival, (int32_t)ival};
    uint8_t u8[2] = {(uint8_t)ival, (uint8_t)ival};
    double dv[2] = {dval, dval};
    const char *sv[2] = {sval, sval};
    char *fixed = NULL;
    switch (kind) {
    case FZ_I64: ftype = H5Tcopy(H5T_STD_I64LE), mtype = H5Tcopy(H5T_NATIVE_INT64), buf = iv; break;
    case FZ_I32: ftype = H5Tcopy(H5T_STD_I32LE), mtype = H5Tcopy(H5T_NATIVE_INT32), buf = i32; break;
    case FZ_U64: ftype = H5Tcopy(H5T_STD_U64LE), mtype = H5Tcopy(H5T_NATIVE_UINT64), buf = uv; break;
    case FZ_F64: ftype = H5Tcopy(H5T_IEEE_F64LE), mtype = H5Tcopy(H5T_NATIVE_DOUBLE), buf = dv; break;
    case FZ_U8: ftype = H5Tcopy(H5T_STD_U8LE), mtype = H5Tcopy(H5T_NATIVE_UINT8), buf = u8; break;
    case FZ_STR: {
        size_t len = strlen(sval) + 1;
        ftype = H5Tcopy(H5T_C_S1);
        H5Tset_size(ftype, len);
        H5Tset_cset(ftype, H5T_CSET_UTF8);
        mtype = H5Tcopy(ftype);
        fixed = calloc(2, len);
        memcpy(fixed, sval, len);
        memcpy(fixed + len, sval, len);
        buf = fixed;
        break;
    }
    default:
        ftype = H5Tcopy(H5T_C_S1);
        H5Tset_size(ftype, H5T_VARIABLE);
        H5Tset_cset(ftype, H5T_CSET_UTF8);
        mtype = H5Tcopy(ftype);
        buf = sv;
    }
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        if (n > 0) H5Awrite(a, mtype, buf);
        H5Aclose(a);
    }
    free(fixed);
    H5Tclose(ftype);
    H5Tclose(mtype);
    H5Sclose(space);
}

void fz_attr(fz_in *in, hid_t loc, const char *name, fz_kind good, int64_t ival, double dval, const char *sval) {
    static const double specials[] = {0.0, -1.0, 1e300, -1e300, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 5e-324};
    uint8_t sel = fz_u8(in);
    fz_kind kind = good;
    int n = 1;
    char *s = NULL;
    switch (sel % 6) {
    case 0:
        if (sel != 0) return; /* missing */
        break;
    case 1: /* another kind, another value */
        kind = (fz_kind)(fz_u8(in) % FZ_NKINDS);
        /* fall through */
    case 2: /* another value */
        ival = fz_count(in, ival);
        dval = fz_u8(in) & 1 ? specials[fz_u8(in) % 8] : (double)ival;
        s = fz_string(in, sval ? sval : "", 256);
        sval = s;
        break;
    case 3: n = 2; break;   /* an array, not a scalar */
    case 4: n = 0; break;   /* a null dataspace: no value at all */
    default: kind = (kind == FZ_STR ? FZ_VSTR : kind == FZ_VSTR ? FZ_STR : kind == FZ_I64 ? FZ_I32 : FZ_I64);
    }
    if (!sval) sval = "";
    put_attr(loc, name, kind, n, ival, dval, sval);
    free(s);
}

static const hid_t *dset_types(void) {
    static hid_t t[10];
    t[0] = H5T_NATIVE_UINT8, t[1] = H5T_NATIVE_INT8, t[2] = H5T_NATIVE_UINT16, t[3] = H5T_NATIVE_INT16;
    t[4] = H5T_NATIVE_UINT32, t[5] = H5T_NATIVE_INT32, t[6] = H5T_NATIVE_INT64, t[7] = H5T_NATIVE_FLOAT;
    t[8] = H5T_NATIVE_DOUBLE, t[9] = H5T_NATIVE_UINT64;
    return t;
}

/* Creates the groups on the way to path (each "/a/b" prefix). */
static void make_groups(hid_t file, const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = strchr(buf + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0) H5Gclose(g);
        }
        *s = '/';
    }
}

#define FZ_MAX_WRITE (4u << 20)
/* HDF5 keeps about 1 KB of bookkeeping per chunk a write touches: a 4 MiB dataset in chunks
 * of one row would take over 1 GB to write (tests/fuzz/regressions/image_shard/many-chunks),
 * so one of more chunks than this stays unwritten, as a larger one does. */
#define FZ_MAX_CHUNKS (1u << 14)

void fz_dataset(fz_in *in, hid_t file, const char *path, const fz_dset *good) {
    make_groups(file, path);
    uint8_t presence = fz_u8(in);
    if (presence == 1) return;
    if (presence == 2) { /* a group where a dataset belongs */
        hid_t g = H5Gcreate2(file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        return;
    }
    unsigned t = fz_pick(in, 11);
    hid_t type = t == 0 ? good->type : dset_types()[t - 1];
    int ndim = good->ndim;
    uint8_t r = fz_u8(in);
    if (r) ndim = r % 6;
    hsize_t dims[5];
    for (int d = 0; d < ndim; d++) dims[d] = (hsize_t)fz_count(in, d < good->ndim ? (int64_t)good->dims[d] : 1);
    unsigned layout = fz_pick(in, 4); /* 0: as good, 1: contiguous, 2: chunked, 3: chunked + Fletcher32 */
    int chunked = layout == 0 ? good->fletcher : layout >= 2;
    int fletcher = layout == 0 ? good->fletcher : layout == 3;
    hsize_t chunk_rows = layout == 3 ? (hsize_t)fz_u16(in) : good->chunk_rows;
    unsigned contents = fz_pick(in, 4); /* 0: good, 1: none written, 2: the first rows only, 3: input bytes */

    /* elements and bytes, without overflow; anything past FZ_MAX_WRITE stays unwritten */
    size_t elem = H5Tget_size(type), nelem = 1;
    int huge = 0;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] > (hsize_t)1 << 40) huge = 1;
        else if (dims[d] && nelem > SIZE_MAX / 2 / dims[d]) huge = 1;
        else nelem *= dims[d];
    }
    if (huge || nelem > FZ_MAX_WRITE / elem) contents = 1;

    char what[256];
    snprintf(what, sizeof what, "type %u, rank %d, dims %llu %llu, layout %u, contents %u", t, ndim,
             ndim > 0 ? (unsigned long long)dims[0] : 0ull, ndim > 1 ? (unsigned long long)dims[1] : 0ull, layout,
             contents);
    fz_note(path, what);
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    if (space < 0) return;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_IFSET);
    if (chunked && ndim > 0) {
        hsize_t chunk[5];
        uint64_t bytes = elem;
        for (int d = ndim - 1; d >= 0; d--) {
            hsize_t want = d == 0 && chunk_rows ? chunk_rows : dims[d];
            if (want > dims[d]) want = dims[d];
            if (want < 1) want = 1;
            if (bytes * want > (1u << 30)) want = 1; /* HDF5 refuses chunks of 4 GiB */
            chunk[d] = want;
            bytes *= want;
        }
        uint64_t nchunks = 1;
        for (int d = 0; d < ndim && nchunks <= FZ_MAX_CHUNKS; d++) {
            uint64_t along = dims[d] == 0 ? 1 : (dims[d] - 1) / chunk[d] + 1;
            nchunks = along > FZ_MAX_CHUNKS ? FZ_MAX_CHUNKS + 1 : nchunks * along; /* no wrap: both <= 2^14 */
        }
        if (nchunks > FZ_MAX_CHUNKS) contents = 1;
        H5Pset_chunk(dcpl, ndim, chunk);
        if (fletcher) H5Pset_fletcher32(dcpl);
    }
    hid_t ds = H5Dcreate2(file, path, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    if (ds < 0) {
        H5Sclose(space);
        return;
    }
    if (contents != 1 && nelem > 0) {
        void *buf = calloc(nelem ? nelem : 1, elem);
        hid_t mtype = type;
        if (contents == 3) {
            size_t len;
            const uint8_t *p = fz_bytes(in, nelem * elem, &len);
            for (size_t i = 0; len && i < nelem * elem; i++) ((uint8_t *)buf)[i] = p[i % len];
        } else if (good->data) {
            /* the good elements in their own type (cycled if there are more now): HDF5
             * converts them to this dataset's type */
            size_t gelem = H5Tget_size(good->type), gn = 1;
            for (int d = 0; d < good->ndim; d++) gn *= good->dims[d];
            free(buf);
            buf = calloc(nelem, gelem);
            for (size_t i = 0; gn && i < nelem; i++)
                memcpy((char *)buf + i * gelem, (const char *)good->data + (i % gn) * gelem, gelem);
            mtype = good->type;
        }
        hid_t fspace = H5Dget_space(ds);
        hid_t mspace = H5S_ALL;
        if (contents == 2 && ndim > 0) {
            hsize_t start[5] = {0}, count[5];
            memcpy(count, dims, sizeof(hsize_t) * (size_t)ndim);
            count[0] = dims[0] ? (hsize_t)fz_u16(in) % dims[0] : 0;
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
            mspace = H5Screate_simple(ndim, count, NULL);
        }
        if (contents != 2 || ndim == 0 || H5Sget_select_npoints(fspace) > 0)
            H5Dwrite(ds, mtype, mspace, contents == 2 ? fspace : H5S_ALL, H5P_DEFAULT, buf);
        if (mspace != H5S_ALL) H5Sclose(mspace);
        H5Sclose(fspace);
        free(buf);
    }
    /* a chunk stored as it is, past the filter: its checksum is whatever the input says */
    if (fz_u8(in) && chunked && ndim > 0) {
        size_t len;
        const uint8_t *p = fz_bytes(in, 4096, &len);
        hsize_t offset[5] = {0};
        if (len) H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset, len, p);
    }
    H5Dclose(ds);
    H5Sclose(space);
}
