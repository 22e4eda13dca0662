/* fuzz_image_shard: the image split reader (datasets/image_shard.c) on HDF5 files built from
 * the input (fuzz_util.h: the empty input builds a good file, each byte bends one thing):
 * /train and /test images (N x H x W x C uint8) and labels (N uint8) of any type, rank,
 * shape, layout and contents, chunks written or not. Then it opens a rank's shard as the
 * jobs do, reads it all in batches over an epoch, and opens a subset (a resume on another
 * world size). Whatever the reader accepts must be readable to its end at the shape it
 * reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_shard.h"

#define N 10
#define H 3
#define W 4
#define C 2

static void build(fz_in *in, const char *path) {
    static uint8_t images[N * H * W * C], labels[N];
    for (size_t i = 0; i < sizeof images; i++) images[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < N; i++) labels[i] = (uint8_t)(i % 10);
    hid_t f = fz_h5_create(path);
    const char *splits[] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        char p[64];
        snprintf(p, sizeof p, "/%s/images", splits[s]);
        fz_dset im = {H5T_NATIVE_UINT8, 4, {N, H, W, C}, images, 1, 4};
        fz_dataset(in, f, p, &im);
        snprintf(p, sizeof p, "/%s/labels", splits[s]);
        fz_dset lb = {H5T_NATIVE_UINT8, 1, {N}, labels, 1, 4};
        fz_dataset(in, f, p, &lb);
    }
    H5Fclose(f);
}

static void read_all(image_shard *s, uint64_t seed, int shuffle) {
    long n = image_shard_size(s), total = image_shard_total(s);
    size_t ex = (size_t)image_shard_height(s) * (size_t)image_shard_width(s) * (size_t)image_shard_channels(s);
    if (n < 0 || n > total || ex == 0) abort();
    image_shard_set_epoch(s, seed, 1, shuffle);
    enum { BATCH = 4 };
    uint8_t *images = malloc(BATCH * ex), labels[BATCH];
    long idx[BATCH];
    for (long pos = 0; pos < n; pos += BATCH) {
        int k = n - pos < BATCH ? (int)(n - pos) : BATCH;
        image_shard_get(s, pos, k, images, labels, idx);
        for (int i = 0; i < k; i++)
            if (idx[i] < 0 || idx[i] >= total) abort();
    }
    free(images);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) fz_h5_init(), init = 1;
    fz_in in = {data, size};
    const char *path = fz_path("images.h5");
    /* the reader's own arguments, as a job passes them */
    int world = 1 + fz_pick(&in, 4), rank = (int)fz_pick(&in, (unsigned)world);
    uint64_t seed = fz_u8(&in);
    build(&in, path);
    char err[1024];
    const char *splits[] = {"train", "test"};
    long total = 0;
    for (int k = 0; k < 2; k++) {
        image_shard *s = image_shard_open(path, splits[k], rank, world, err, sizeof err);
        fz_note("image_shard_open", s ? "ok" : err);
        if (!s) continue;
        read_all(s, seed, k == 0);
        if (k == 0) total = image_shard_total(s);
        image_shard_close(s);
    }
    /* a subset: every other example from the input's offset, as a resume would pick them */
    long n = 0, *idx = malloc(sizeof *idx * 64);
    for (long i = fz_u8(&in) % 4; i < total && n < 64; i += 2) idx[n++] = i;
    image_shard *s = image_shard_open_subset(path, "train", rank, idx, n, err, sizeof err);
    fz_note("image_shard_open_subset", s ? "ok" : err);
    if (s) {
        if (image_shard_size(s) != n) abort();
        read_all(s, seed, 1);
        image_shard_close(s);
    }
    free(idx);
    return 0;
}
