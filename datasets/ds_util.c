/* ds_util.c: HDF5 error-stack handling, attributes and atomic file
 * replacement for datasets/. */
#include "ds_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void h5_quiet_begin(h5_quiet *q) {
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5_quiet_end(const h5_quiet *q) {
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

/* What HDF5's current error stack says: the innermost message, the OS errno a file driver
 * put into its text ("... errno = 28, error message = ..."), and whether a checksum failed
 * (the Fletcher32 filter says "data error detected by Fletcher32 checksum", metadata reads
 * "incorrect metadata checksum ..."; HDF5 has no error code for either alone). */
typedef struct {
    char desc[256];
    int sys_errno, checksum;
} h5_stack;

static herr_t read_entry(unsigned n, const H5E_error2_t *e, void *data) {
    h5_stack *s = data;
    const char *d = e->desc ? e->desc : "";
    if (n == 0 && d[0]) snprintf(s->desc, sizeof s->desc, "%s", d);
    const char *p = strstr(d, "errno = ");
    if (p && s->sys_errno == 0) s->sys_errno = atoi(p + strlen("errno = "));
    if (strstr(d, "checksum")) s->checksum = 1;
    return 0;
}

static h5_stack read_stack(void) {
    h5_stack s = {"unknown HDF5 error", 0, 0};
    /* upward: entry 0 is where the error was first detected, the most telling one */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, read_entry, &s);
    return s;
}

void h5_last_error(char *buf, size_t len) {
    if (!buf || len == 0) return;
    h5_stack s = read_stack();
    snprintf(buf, len, "%s", s.desc);
}

int h5_error_is_checksum(void) { return read_stack().checksum; }

void h5_error_reason(char *buf, size_t len) {
    if (!buf || len == 0) return;
    h5_stack s = read_stack();
    snprintf(buf, len, "%s", s.checksum ? "checksum mismatch (the file is corrupt)"
                             : s.sys_errno > 0 ? strerror(s.sys_errno) : s.desc);
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

/* ---- removing the temporary file on SIGINT, SIGTERM, SIGHUP ------------------------- */

/* Process-wide by necessity: a signal handler can reach nothing else. The path is copied
 * in before the handlers are installed and read only by them, so no locking is needed. */
static char guard_path[4096];
static const int guard_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define GUARD_NSIG (int)(sizeof guard_signals / sizeof guard_signals[0])
static struct sigaction guard_saved[GUARD_NSIG];

/* Only async-signal-safe calls: unlink and raise. SA_RESETHAND has already put the default
 * action back, and the signal is blocked while we run, so the raise takes effect (and ends
 * the process with the signal's own status) as soon as the handler returns. */
static void guard_handler(int sig) {
    int e = errno;
    unlink(guard_path);
    raise(sig);
    errno = e;
}

int ds_tmp_guard_begin(const char *tmp, char *err, size_t errlen) {
    size_t len = strlen(tmp);
    if (len >= sizeof guard_path)
        return ds_fail(err, errlen, "%s: path too long for the cleanup handler (at most %zu bytes)", tmp,
                       sizeof guard_path - 1);
    memcpy(guard_path, tmp, len + 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = guard_handler;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    /* a second signal during the handler waits, rather than interrupting the unlink */
    for (int i = 0; i < GUARD_NSIG; i++) sigaddset(&sa.sa_mask, guard_signals[i]);
    for (int i = 0; i < GUARD_NSIG; i++) {
        /* a signal the caller ignores (nohup, a shell's background job) stays ignored */
        int ok = sigaction(guard_signals[i], NULL, &guard_saved[i]) == 0 &&
                 (guard_saved[i].sa_handler == SIG_IGN || sigaction(guard_signals[i], &sa, NULL) == 0);
        if (!ok) {
            int e = errno;
            while (i-- > 0) sigaction(guard_signals[i], &guard_saved[i], NULL);
            return ds_fail(err, errlen, "%s: cannot install a signal handler: %s", tmp, strerror(e));
        }
    }
    return 0;
}

void ds_tmp_guard_end(void) {
    for (int i = 0; i < GUARD_NSIG; i++) sigaction(guard_signals[i], &guard_saved[i], NULL);
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

#define ATTR_STR_MAX ((size_t)64 << 20)

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
    /* a fixed-length type may declare up to 4 GiB; no attribute of ours comes near this
     * bound (a char tokenizer's table is at most 4.5 MB), so it is refused, not allocated */
    size_t size = H5Tget_size(type);
    if (size == 0 || size > ATTR_STR_MAX) return NULL;
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
    if (!*out)
        snprintf(why, whylen, H5Tis_variable_str(type) <= 0 && H5Tget_size(type) > ATTR_STR_MAX
                                  ? "a string longer than 64 MiB" : "unreadable");
    H5Tclose(type);
    H5Aclose(attr);
    return *out ? 0 : -1;
}

char *ds_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ds_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        /* bounded as it grows (the path may name a device or a pipe that never ends): the
         * last buffer holds DS_READ_FILE_MAX bytes, the NUL, and one byte to see more */
        if (n > DS_READ_FILE_MAX) {
            free(buf);
            fclose(f);
            ds_fail(err, errlen, "%s: larger than %zu bytes: expected a small file", path, (size_t)DS_READ_FILE_MAX);
            return NULL;
        }
        size_t next = cap * 2 < DS_READ_FILE_MAX + 2 ? cap * 2 : DS_READ_FILE_MAX + 2;
        char *bigger = realloc(buf, next);
        if (!bigger) free(buf);
        buf = bigger;
        cap = next;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        ds_fail(err, errlen, "%s: cannot read: %s", path, buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
