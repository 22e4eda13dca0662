/* ds_util.c: error formatting and HDF5 error-stack handling for datasets/. */
#include "ds_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
