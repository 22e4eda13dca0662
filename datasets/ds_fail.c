/* ds_fail.c: the datasets' one-line error messages (declared in ds_util.h). A file of its
 * own, without HDF5, so that bench/gpu_check's standalone build links it with mnist_idx.c. */
#include <stdarg.h>
#include <stdio.h>

#include "ds_util.h"

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
