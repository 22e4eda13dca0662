/* tool_png_size FILE.png: decodes the whole image with libpng (so a cut or corrupt file
 * fails) and prints "WIDTH HEIGHT"; exit 1 when the file does not decode. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static int decode(FILE *f, png_uint_32 *w, png_uint_32 *h) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = NULL;
    png_uint_32 n = 0;
    if (!info || setjmp(png_jmpbuf(png))) {
        for (png_uint_32 i = 0; rows && i < n; i++) free(rows[i]);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    *w = png_get_image_width(png, info), *h = png_get_image_height(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    rows = calloc(*h, sizeof *rows);
    if (!rows) png_error(png, "out of memory");
    for (n = 0; n < *h; n++)
        if (!(rows[n] = malloc(rowbytes))) png_error(png, "out of memory");
    png_read_image(png, rows);
    png_read_end(png, NULL);
    for (png_uint_32 i = 0; i < n; i++) free(rows[i]);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_png_size FILE.png\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    png_uint_32 w = 0, h = 0;
    int rc = f ? decode(f, &w, &h) : -1;
    if (f) fclose(f);
    if (rc != 0) {
        fprintf(stderr, "%s: does not decode as a PNG\n", argv[1]);
        return 1;
    }
    printf("%u %u\n", (unsigned)w, (unsigned)h);
    return 0;
}
