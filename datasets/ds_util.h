/* ds_util.h: helpers shared by the files of datasets/ (private: nothing outside includes it). */
#ifndef DTRAIN_DS_UTIL_H
#define DTRAIN_DS_UTIL_H

#include <stddef.h>

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

#endif
