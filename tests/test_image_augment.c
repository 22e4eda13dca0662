/* image_shift against a pixel-by-pixel reference, for every shift that leaves part of the
 * image and for shifts that leave none. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "image_augment.h"

static unsigned char reference(const unsigned char *src, int H, int W, int C, int dx, int dy, int y, int x,
                               int c) {
    int sy = y - dy, sx = x - dx;
    return sy >= 0 && sy < H && sx >= 0 && sx < W ? src[((size_t)sy * W + sx) * C + c] : 0;
}

static void check(int H, int W, int C) {
    size_t n = (size_t)H * W * C;
    unsigned char *src = malloc(n), *dst = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(1 + (i * 37) % 255); /* no zeros */
    for (int dy = -H - 1; dy <= H + 1; dy++)
        for (int dx = -W - 1; dx <= W + 1; dx++) {
            memset(dst, 0xAB, n); /* poison: every byte must be written */
            image_shift(dst, src, H, W, C, dx, dy);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int c = 0; c < C; c++) {
                        unsigned char want = reference(src, H, W, C, dx, dy, y, x, c);
                        unsigned char got = dst[((size_t)y * W + x) * C + c];
                        if (got == want) continue;
                        cr_expect_eq(got, want, "%dx%dx%d shifted (%d, %d): pixel (%d, %d, %d) = %d, expected %d", H,
                                     W, C, dx, dy, y, x, c, got, want);
                        goto done;
                    }
        }
done:
    free(src);
    free(dst);
}

Test(image_shift, matches_reference_gray) { check(7, 5, 1); }
Test(image_shift, matches_reference_channels) { check(4, 6, 3); }
Test(image_shift, mnist_size) { check(28, 28, 1); }
