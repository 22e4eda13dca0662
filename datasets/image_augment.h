/* image_augment.h: transformations of training images (uint8, H x W x C, row-major). */
#ifndef DTRAIN_IMAGE_AUGMENT_H
#define DTRAIN_IMAGE_AUGMENT_H

/* dst = src moved dx pixels right and dy pixels down (negative: left, up); the pixels
 * uncovered are 0. |dx| >= W or |dy| >= H leaves an all-zero image. dst and src must not
 * overlap. */
void image_shift(unsigned char *dst, const unsigned char *src, int H, int W, int C, int dx, int dy);

#endif
