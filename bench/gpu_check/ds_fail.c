/* ds_fail.c: datasets/ds_util.c's ds_fail, the one helper of that file datasets/mnist_idx.c
 * calls, for bench/gpu_check's standalone build (ds_util.c itself needs HDF5). The same
 * behaviour: a one-line message in err, -1 returned. */
#include <stdarg.h>
#include <stdio.h>

#include "ds_util.h"

int ds_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        for (char *p = err; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return -1;
}
