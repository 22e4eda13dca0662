/* pngio.c: grayscale PNG writer through libpng, and the grid layout of samples. */
#include "pngio.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* libpng reports errors by longjmp to the setjmp below; everything the error path frees is
 * set before setjmp and never changed after it, so no local is clobbered. */
static int write_rows(FILE *f, png_bytep *rows, int w, int h, char *err, size_t errlen) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(err, errlen, "libpng: out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        snprintf(err, errlen, "libpng failed while writing");
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* A write error (a full disk) shows up inside libpng (its fwrite), at the flush, or at the
 * close; whichever comes first, the message names the file and the reason, and a partial
 * file is removed rather than left looking like a picture. */
int png_write_gray(const char *path, const uint8_t *pix, int w, int h, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    png_bytep *rows = xmalloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pix + (size_t)y * w);
    errno = 0;
    int rc = write_rows(f, rows, w, h, err, errlen);
    free(rows);
    int e = errno;
    if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = -1, e = errno;
    if (fclose(f) != 0 && rc == 0) rc = -1, e = errno;
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, e ? strerror(e) : "libpng failed");
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) unlink(path);
    }
    return rc;
}

uint8_t *image_grid(const uint8_t *imgs, int n, int ih, int iw, int cols, int pad, int *gw, int *gh) {
    int rows = (n + cols - 1) / cols;
    *gw = cols * (iw + pad) + pad;
    *gh = rows * (ih + pad) + pad;
    uint8_t *canvas = xcalloc((size_t)*gw * *gh, 1);
    for (int i = 0; i < n; i++) {
        int x0 = pad + (i % cols) * (iw + pad), y0 = pad + (i / cols) * (ih + pad);
        for (int y = 0; y < ih; y++)
            memcpy(canvas + (size_t)(y0 + y) * *gw + x0, imgs + ((size_t)i * ih + y) * iw, (size_t)iw);
    }
    return canvas;
}
