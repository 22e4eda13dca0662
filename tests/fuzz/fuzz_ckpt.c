/* fuzz_ckpt: checkpoint reading (core/checkpoint.c: ckpt_open's attributes and verification,
 * fields and tensors; core/ckpt_v1.c: format 1's job-state blob; the training-state table of
 * core/train_state.c; the stored config through core/config.c) on HDF5 files built from the
 * input (fuzz_util.h: the empty input builds a good format-2 checkpoint of a classify run on
 * 2 ranks; a first byte 1 picks format 1 instead, a second byte 1 opens the checkpoint
 * through its directory's `latest` file). Then it reads what a resume reads, in the same
 * order: the tensors, every trainer field of TRAIN_STATE, the job's fields (or format 1's
 * blob) and their checks (train_state_read), the step, the stored config. Whatever a read accepts must hold as many values as
 * its dims say (the harness reads them all). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify/classify.h"
#include "config.h"
#include "fuzz_util.h"
#include "train_state.h"

#define WORLD 2
#define EXAMPLES 10
static const char CONFIG[] = "seed = 3\nlr = 0.05\nepochs = 2\nbatch_size = 4\n";

static void put_root(fz_in *in, hid_t f, int version) {
    fz_attr(in, f, "format_version", FZ_I32, version, 0, NULL);
    fz_attr(in, f, "job", FZ_STR, 0, 0, "classify");
    fz_attr(in, f, "config", FZ_STR, 0, 0, CONFIG);
    fz_attr(in, f, "metrics", FZ_STR, 0, 0, "{\"loss\": 0.5}");
}

static void put_tensors(fz_in *in, hid_t f) {
    static const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, b[4] = {0.5f, -1, 2, 0};
    fz_dset dw = {H5T_NATIVE_FLOAT, 2, {3, 4}, w, 1, 2};
    fz_dataset(in, f, "/params/w", &dw);
    fz_dset db = {H5T_NATIVE_FLOAT, 1, {4}, b, 1, 0};
    fz_dataset(in, f, "/params/b", &db);
}

static const uint64_t RNG[WORLD * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
static const double LOSS[WORLD] = {1.5, 2.5}, ITEMS[WORLD] = {8, 8};
static const uint8_t CONSUMED[EXAMPLES] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0};

static void build_v2(fz_in *in, const char *path) {
    hid_t f = fz_h5_create(path);
    put_root(in, f, 2);
    put_tensors(in, f);
    hid_t g = H5Gcreate2(f, "train_state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    fz_attr(in, g, "step", FZ_I64, 6, 0, NULL);
    fz_attr(in, g, "epoch", FZ_I64, 1, 0, NULL);
    fz_attr(in, g, "step_in_epoch", FZ_I64, 1, 0, NULL);
    fz_attr(in, g, "epoch_steps", FZ_I64, 2, 0, NULL);
    fz_attr(in, g, "optimizer_steps", FZ_I64, 6, 0, NULL);
    fz_attr(in, g, "lr", FZ_F64, 0, 0.05, NULL);
    fz_attr(in, g, "world_size", FZ_I32, WORLD, 0, NULL);
    H5Gclose(g);
    fz_dset rng = {H5T_NATIVE_UINT64, 2, {WORLD, 4}, RNG, 1, 0};
    fz_dataset(in, f, "/train_state/rng", &rng);
    fz_dset loss = {H5T_NATIVE_DOUBLE, 1, {WORLD}, LOSS, 1, 0};
    fz_dataset(in, f, "/train_state/epoch_loss_sum", &loss);
    fz_dset items = {H5T_NATIVE_DOUBLE, 1, {WORLD}, ITEMS, 1, 0};
    fz_dataset(in, f, "/train_state/epoch_items", &items);
    fz_dset consumed = {H5T_NATIVE_UINT8, 1, {EXAMPLES}, CONSUMED, 1, 0};
    fz_dataset(in, f, "/job_state/data_consumed", &consumed);
    g = H5Gopen2(f, "job_state", H5P_DEFAULT);
    if (g < 0) g = H5Gcreate2(f, "job_state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    fz_attr(in, g, "data_order_is_remainder", FZ_I64, 0, 0, NULL);
    H5Gclose(g);
    H5Fclose(f);
}

/* format 1: the scalars on "/", /rng_states, and the blob /job_state: {magic "dtr1", world,
 * job_len}, world x {epoch_loss_sum, epoch_items}, then the job's bytes (a remainder flag and
 * one byte per example). job_len is derived from the bytes present, as a writer would. */
static void build_v1(fz_in *in, const char *path) {
    hid_t f = fz_h5_create(path);
    put_root(in, f, 1);
    put_tensors(in, f);
    fz_attr(in, f, "step", FZ_I64, 6, 0, NULL);
    fz_attr(in, f, "epoch", FZ_I64, 1, 0, NULL);
    fz_attr(in, f, "step_in_epoch", FZ_I64, 1, 0, NULL);
    fz_attr(in, f, "world_size", FZ_I32, WORLD, 0, NULL);
    fz_attr(in, f, "lr", FZ_F64, 0, 0.05, NULL);
    if (fz_u8(in) != 1) fz_attr(in, f, "opt_t", FZ_I64, 6, 0, NULL);
    if (fz_u8(in) != 1) fz_attr(in, f, "epoch_steps", FZ_I64, 2, 0, NULL);
    fz_dset rng = {H5T_NATIVE_UINT64, 2, {WORLD, 4}, RNG, 1, 0};
    fz_dataset(in, f, "/rng_states", &rng);

    uint32_t world = (uint32_t)fz_count(in, WORLD);
    size_t ranks = world < 8 ? world : 8, job = 1 + EXAMPLES;
    size_t len = 16 + ranks * 16 + job;
    uint8_t *blob = calloc(1, len);
    uint32_t magic = 0x64747231u;
    memcpy(blob, &magic, 4);
    memcpy(blob + 4, &world, 4);
    uint64_t job_len = (uint64_t)len - 16 - (uint64_t)world * 16;
    job_len = (uint64_t)fz_count(in, (int64_t)job_len);
    memcpy(blob + 8, &job_len, 8);
    for (size_t r = 0; r < ranks; r++) {
        memcpy(blob + 16 + r * 16, &LOSS[r % WORLD], 8);
        memcpy(blob + 24 + r * 16, &ITEMS[r % WORLD], 8);
    }
    blob[16 + ranks * 16] = 0;
    memcpy(blob + 17 + ranks * 16, CONSUMED, EXAMPLES);
    fz_dset d = {H5T_NATIVE_UINT8, 1, {len}, blob, 1, 0};
    fz_dataset(in, f, "/job_state", &d);
    free(blob);
    H5Fclose(f);
}

static volatile uint64_t sink;

/* reads every value the field says it holds */
static void touch_field(const ckpt_field *f) {
    if (f->ndim == 0 || !f->data) return;
    FZ_CHECK(f->dims[0] >= 0 && (f->ndim < 2 || f->dims[1] >= 0));
    size_t n = (size_t)f->dims[0] * (size_t)(f->ndim == 2 ? f->dims[1] : 1);
    size_t bytes = n * state_type_size(f->type);
    for (size_t i = 0; i < bytes; i++) sink += ((const uint8_t *)f->data)[i];
}

/* what a resume reads and checks (train_state_read), then every value it accepted */
static void read_state(ckpt *c) {
    char err[1024];
    loaded_state s;
    memset(&s, 0, sizeof s);
    int rc = train_state_read(c, &classify_job, &s, err, sizeof err);
    fz_note("read the training state", rc == 0 ? "ok" : err);
    if (rc == 0) {
        for (int i = 0; i < TRAIN_STATE_N; i++)
            if (TRAIN_STATE[i].per_rank) touch_field(&s.trainer[i]);
        for (int i = 0; i < s.njob; i++) touch_field(&s.job[i]);
    }
    train_state_free_loaded(&s, 0);
}

static void use(const char *path) {
    char err[1024];
    ckpt *c = ckpt_open(path, err, sizeof err);
    fz_note("ckpt_open", c ? "ok" : err);
    if (!c) return;
    const ckpt_meta *m = ckpt_get_meta(c);
    FZ_CHECK(m->format_version == 1 || m->format_version == 2);
    FZ_CHECK(m->config_text && memchr(m->job, 0, sizeof m->job));
    (void)ckpt_count(c, "params");
    float w[12], b[4];
    ckpt_tensor tw = {"params", "w", 2, {3, 4}, w}, tb = {"params", "b", 1, {4}, b};
    if (ckpt_has(c, "params", "w") && ckpt_read(c, &tw, err, sizeof err) != 0) fz_note("ckpt_read", err);
    if (ckpt_has(c, "params", "b") && ckpt_read(c, &tb, err, sizeof err) != 0) fz_note("ckpt_read", err);
    read_state(c);
    long step = train_state_step(c, err, sizeof err);
    fz_note("train_state_step", step >= 0 ? "ok" : err);
    sink += (uint64_t)step;
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (config_declare(&cfg, trainer_keys, err, sizeof err) != 0 ||
        config_declare(&cfg, classify_job.keys, err, sizeof err) != 0)
        abort();
    if (config_apply_text(&cfg, m->config_text, "checkpoint", err, sizeof err) != 0) fz_note("stored config", err);
    config_free(&cfg);
    ckpt_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) fz_h5_init(), init = 1;
    fz_in in = {data, size};
    int v1 = fz_u8(&in) == 1, via_latest = fz_u8(&in) == 1;
    char path[1024];
    snprintf(path, sizeof path, "%s", fz_path("ckpt-00000006.h5"));
    if (v1) build_v1(&in, path);
    else build_v2(&in, path);
    use(path);
    /* the checkpoint directory, through its `latest` file (whose text comes from the input) */
    if (via_latest) {
        char *latest = fz_string(&in, "ckpt-00000006.h5\n", 300);
        fz_write_file(fz_path("latest"), latest, strlen(latest));
        free(latest);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", fz_path(""));
        use(dir);
        char *cands[8];
        int n = ckpt_candidates(dir, cands, 8);
        FZ_CHECK(n >= 0 && n <= 8);
        for (int i = 0; i < n; i++) free(cands[i]);
        unlink(fz_path("latest"));
    }
    return 0;
}
