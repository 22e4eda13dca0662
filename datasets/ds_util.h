/* ds_util.h: helpers shared by the files of datasets/, and the HDF5 error handling that
 * core/checkpoint.c uses too (core sits above datasets). */
#ifndef DTRAIN_DS_UTIL_H
#define DTRAIN_DS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

/* Formats a one-line message into err (if any) and returns -1, so that an error path reads
 * `return ds_fail(err, errlen, "%s: ...", path, ...);`. */
int ds_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* HDF5 prints its whole error stack to stderr by default; we report one line of our own
 * instead. The previous handler is saved and restored so that a caller's setting survives. */
typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;
void h5_quiet_begin(h5_quiet *q);
void h5_quiet_end(const h5_quiet *q);

/* The innermost (most specific) message on HDF5's current error stack, or "unknown HDF5
 * error". Call it right after the failing call: the next API call clears the stack. */
void h5_last_error(char *buf, size_t len);

/* 1 if HDF5's current error stack says that a checksum did not match: a chunk's Fletcher32
 * filter or a metadata checksum, i.e. the file's bytes changed after it was written. The
 * readers report that as corruption rather than as a generic read error. Call it right
 * after the failing call, like h5_last_error. */
int h5_error_is_checksum(void);

/* Why the failed call failed, for a user: "checksum mismatch (the file is corrupt)", else
 * strerror of the OS errno a file driver reported (a full disk says "No space left on
 * device"), else h5_last_error's message. Call it right after the failing call. */
void h5_error_reason(char *buf, size_t len);

/* ---- shared by the token files (image_shard.c and prepare_mnist.c hold older static
 * copies of the first four) ------------------------------------------------------------ */

/* 0 if path can be opened for reading and is not a directory; else -1 and "PATH: cannot
 * open: <strerror>". open(2) first, because its errno says "No such file" plainly where
 * HDF5's message is a paragraph. */
int ds_check_readable(const char *path, char *err, size_t errlen);

/* 1 if the absolute HDF5 path names a link in file. Each prefix is tested in turn because
 * H5Lexists fails, rather than answering "no", when an intermediate group is missing. */
int h5_path_exists(hid_t file, const char *dpath);

/* "uint16", "int32", "float32", "string", ... for messages. */
void h5_type_name(hid_t type, char *buf, size_t len);

/* Scalar attributes. The string is variable-length UTF-8, which h5py reads back as str
 * rather than bytes. Return 0, or -1 with HDF5's error stack set (see h5_last_error). */
int h5_attr_write_str(hid_t obj, const char *name, const char *value);
int h5_attr_write_i64(hid_t obj, const char *name, int64_t value);

/* Read scalar attributes written by us or by h5py (any integer type; fixed- or
 * variable-length strings; a fixed-length one of at most 64 MiB). *out of the string reader
 * is malloc'd and NUL-terminated; the caller frees it. Return 0, or -1 with a short reason ("missing", "not an integer", ...)
 * in why. */
int h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, char *why, size_t whylen);
int h5_attr_read_str(hid_t obj, const char *name, char **out, char *why, size_t whylen);

/* Makes the finished temporary file tmp durable and renames it to final_path (same
 * directory, so the rename is atomic); on failure removes tmp. The fsync comes first: the
 * new name must not become visible before the data, or a crash could leave a
 * complete-looking name over an empty file. Errors name final_path. */
int ds_sync_and_rename(const char *tmp, const char *final_path, char *err, size_t errlen);

/* While a converter writes its temporary file, SIGINT, SIGTERM and SIGHUP unlink it before
 * the process dies, so that an interrupted `dtrain prepare` leaves no OUT.tmp.PID (which can
 * be hundreds of MB) behind. The signal is then re-raised with its default action, so the
 * exit status still says "killed by SIGTERM" to the shell or the batch system. Begin before
 * the file is created; end once it has been renamed or removed. Returns 0, or -1 and a line
 * in err when the path does not fit the handler's fixed buffer or a handler cannot be set.
 * One guard at a time per process (the converters run one at a time). */
int ds_tmp_guard_begin(const char *tmp, char *err, size_t errlen);
void ds_tmp_guard_end(void);

/* The whole of a (small) file, NUL-terminated, malloc'd; NULL and "PATH: cannot open|read:
 * <why>" in err, or "PATH: larger than ..." past DS_READ_FILE_MAX bytes (the tokenizer files
 * read this way are stored in token files, whose readers take at most as much). */
#define DS_READ_FILE_MAX ((size_t)1 << 30)
char *ds_read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
