/* pngio.h: 8-bit grayscale PNG output (libpng) and image grids. */
#ifndef DTRAIN_DIFFUSION_PNGIO_H
#define DTRAIN_DIFFUSION_PNGIO_H

#include <stddef.h>
#include <stdint.h>

/* Writes pix[h][w] as an 8-bit grayscale PNG. 0, or -1 with a message in err. */
int png_write_gray(const char *path, const uint8_t *pix, int w, int h, char *err, size_t errlen);

/* Tiles n images of ih x iw (uint8, row-major) into a grid of `cols` columns with `pad`
 * black pixels around each tile; returns the malloc'd canvas and its size. */
uint8_t *image_grid(const uint8_t *imgs, int n, int ih, int iw, int cols, int pad, int *gw, int *gh);

#endif
