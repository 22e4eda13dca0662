/* ds_util.c: error formatting, HDF5 error-stack handling, attributes and atomic file
 * replacement for datasets/. */
#include "ds_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ds_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* one line, whatever a file name or an HDF5 message contained */
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return -1;
}

void h5_quiet_begin(h5_quiet *q) {
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5_quiet_end(const h5_quiet *q) {
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

typedef struct {
    char *buf;
    size_t len;
} first_desc;

static herr_t keep_first(unsigned n, const H5E_error2_t *e, void *data) {
    first_desc *d = data;
    if (n == 0 && e->desc && e->desc[0]) snprintf(d->buf, d->len, "%s", e->desc);
    return 0;
}

void h5_last_error(char *buf, size_t len) {
    if (!buf || len == 0) return;
    snprintf(buf, len, "unknown HDF5 error");
    first_desc d = {buf, len};
    /* upward: entry 0 is where the error was first detected, the most telling one */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_first, &d);
}

/* ---- files ------------------------------------------------------------------------- */

int ds_check_readable(const char *path, char *err, size_t errlen) {
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ds_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    close(fd);
    if (is_dir) return ds_fail(err, errlen, "%s: is a directory: expected a file", path);
    return 0;
}

static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int ds_sync_and_rename(const char *tmp, const char *final_path, char *err, size_t errlen) {
    int rc = 0;
    if (sync_path(tmp) != 0)
        rc = ds_fail(err, errlen, "%s: cannot sync %s: %s", final_path, tmp, strerror(errno));
    else if (rename(tmp, final_path) != 0)
        rc = ds_fail(err, errlen, "%s: cannot rename %s into place: %s", final_path, tmp, strerror(errno));
    if (rc != 0) remove(tmp);
    return rc;
}

/* ---- HDF5 paths, types and attributes ---------------------------------------------- */

int h5_path_exists(hid_t file, const char *dpath) {
    char prefix[512];
    size_t len = strlen(dpath);
    if (len >= sizeof prefix) return 0;
    for (size_t i = 1; i <= len; i++) {
        if (dpath[i] != '/' && dpath[i] != '\0') continue;
        memcpy(prefix, dpath, i);
        prefix[i] = '\0';
        if (H5Lexists(file, prefix, H5P_DEFAULT) <= 0) return 0;
    }
    return 1;
}

void h5_type_name(hid_t type, char *buf, size_t len) {
    size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    default: snprintf(buf, len, "a non-numeric type"); break;
    }
}

int h5_attr_write_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = type >= 0 && space >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(type, H5T_CSET_UTF8) >= 0 &&
             (attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, type, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return ok ? 0 : -1;
}

int h5_attr_write_i64(hid_t obj, const char *name, int64_t value) {
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = space >= 0 && (attr = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

/* Opens attribute name of obj if it exists and holds one value of the given class. */
static hid_t open_scalar_attr(hid_t obj, const char *name, H5T_class_t cls, hid_t *type, char *why,
                              size_t whylen) {
    if (H5Aexists(obj, name) <= 0) {
        snprintf(why, whylen, "missing");
        return H5I_INVALID_HID;
    }
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    *type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    int ok = space >= 0 && *type >= 0 && H5Sget_simple_extent_npoints(space) == 1 && H5Tget_class(*type) == cls;
    if (space >= 0) H5Sclose(space);
    if (ok) return attr;
    snprintf(why, whylen, "not a single %s", cls == H5T_INTEGER ? "integer" : "string");
    if (*type >= 0) H5Tclose(*type);
    if (attr >= 0) H5Aclose(attr);
    return H5I_INVALID_HID;
}

int h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, char *why, size_t whylen) {
    hid_t type, attr = open_scalar_attr(obj, name, H5T_INTEGER, &type, why, whylen);
    if (attr < 0) return -1;
    int ok = H5Aread(attr, H5T_NATIVE_INT64, out) >= 0;
    if (!ok) h5_last_error(why, whylen);
    H5Tclose(type);
    H5Aclose(attr);
    return ok ? 0 : -1;
}

/* Variable-length strings come back as a pointer HDF5 allocated; fixed-length ones as
 * size bytes, not necessarily NUL-terminated. Either way the caller gets its own copy. */
static char *read_str_value(hid_t attr, hid_t type) {
    if (H5Tis_variable_str(type) > 0) {
        char *v = NULL;
        if (H5Aread(attr, type, &v) < 0 || !v) return NULL;
        char *copy = strdup(v);
        H5free_memory(v);
        return copy;
    }
    size_t size = H5Tget_size(type);
    char *copy = calloc(size + 1, 1);
    if (copy && H5Aread(attr, type, copy) < 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

int h5_attr_read_str(hid_t obj, const char *name, char **out, char *why, size_t whylen) {
    hid_t type, attr = open_scalar_attr(obj, name, H5T_STRING, &type, why, whylen);
    if (attr < 0) return -1;
    *out = read_str_value(attr, type);
    if (!*out) snprintf(why, whylen, "unreadable");
    H5Tclose(type);
    H5Aclose(attr);
    return *out ? 0 : -1;
}
