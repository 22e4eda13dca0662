#include "image_augment.h"

#include <stddef.h>
#include <string.h>

void image_shift(unsigned char *dst, const unsigned char *src, int H, int W, int C, int dx, int dy) {
    memset(dst, 0, (size_t)H * W * C);
    int x0 = dx > 0 ? dx : 0, x1 = dx < 0 ? W + dx : W; /* the columns that receive pixels */
    if (x1 <= x0) return;
    for (int y = 0; y < H; y++) {
        int sy = y - dy;
        if (sy >= 0 && sy < H)
            memcpy(dst + ((size_t)y * W + x0) * C, src + ((size_t)sy * W + x0 - dx) * C, (size_t)(x1 - x0) * C);
    }
}
