/* outputs_diffusion.c: a diffusion run's real output (a grid of samples, one row per digit,
 * from its checkpoint), its predictability (one digit under several seeds, one seed twice)
 * and the LeNet judge's figures, through `dtrain sample diffusion` and `dtrain eval diffusion`. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

#define IMG 784 /* 28 x 28 */

/* /images of a file from --out-h5: the first image, or -1 */
static int read_image(const char *path, unsigned char *img) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, "/images", H5P_DEFAULT) : -1;
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[4] = {0};
    if (s >= 0 && H5Sget_simple_extent_ndims(s) == 4 && H5Sget_simple_extent_dims(s, dims, NULL) == 4 &&
        dims[0] == 1 && dims[1] * dims[2] * dims[3] == IMG)
        rc = H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, img) < 0 ? -1 : 0;
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return rc;
}

static int sample_one(const run_files *r, const report_opts *opt, const char *work, long seed, const char *tag,
                      unsigned char *img) {
    char png[2 * REPORT_PATH], h5[2 * REPORT_PATH], log[2 * REPORT_PATH], seed_s[32], steps_s[32], g_s[32], why[512];
    snprintf(png, sizeof png, "%s/%s-%s%ld.png", work, r->name, tag, seed);
    snprintf(h5, sizeof h5, "%s/%s-%s%ld.h5", work, r->name, tag, seed);
    snprintf(log, sizeof log, "%s/%s-%s%ld.log", work, r->name, tag, seed);
    snprintf(seed_s, sizeof seed_s, "%ld", seed);
    snprintf(steps_s, sizeof steps_s, "%d", opt->steps);
    snprintf(g_s, sizeof g_s, "%g", opt->guidance);
    char *args[] = {"dtrain", "sample", "diffusion", "--ckpt", (char *)r->ckpt, "--label", "3", "--n", "1",
                    "--guidance", g_s, "--steps", steps_s, "--seed", seed_s, "--out", png, "--out-h5", h5, NULL};
    if (run_dtrain(args, log, why, sizeof why) != 0 || read_image(h5, img) != 0) {
        fprintf(stderr, "dtrain report: %s: dtrain sample diffusion failed: %s\n", r->dir, *why ? why : h5);
        return -1;
    }
    return 0;
}

static void predictability(const run_files *r, run_outputs *o, const report_opts *opt, const char *work) {
    int n = opt->seeds;
    unsigned char *imgs = xmalloc((size_t)(n + 1) * IMG);
    int ok = 1;
    for (int i = 0; i <= n && ok; i++)
        ok = sample_one(r, opt, work, i < n ? i + 1 : 1, i < n ? "seed" : "again-seed", imgs + (size_t)i * IMG) == 0;
    if (ok) {
        double diff = 0;
        long pairs = 0;
        o->gen_distinct = 0;
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < i; j++) {
                long d = 0;
                for (int p = 0; p < IMG; p++) d += labs((long)imgs[i * IMG + p] - imgs[j * IMG + p]);
                seen |= d == 0;
                diff += (double)d / IMG, pairs++;
            }
            o->gen_distinct += !seen;
        }
        o->gen_seeds = n;
        o->pixel_diff = pairs ? diff / (double)pairs : 0;
        o->repeat_same = memcmp(imgs, imgs + (size_t)n * IMG, IMG) == 0;
    }
    free(imgs);
}

static void judge(const run_files *r, run_outputs *o, const report_opts *opt, const char *work, const char *ckpt) {
    char json[2 * REPORT_PATH], log[2 * REPORT_PATH], per_s[32], steps_s[32], g_s[32], why[512];
    snprintf(json, sizeof json, "%s/%s-eval.json", work, r->name);
    snprintf(log, sizeof log, "%s/%s-eval.log", work, r->name);
    snprintf(per_s, sizeof per_s, "%d", opt->per_label);
    snprintf(steps_s, sizeof steps_s, "%d", opt->steps);
    snprintf(g_s, sizeof g_s, "%g", opt->guidance);
    char *args[] = {"dtrain", "eval", "diffusion", "--ckpt", (char *)r->ckpt, "--classifier", (char *)ckpt,
                    "--n-per-label", per_s, "--guidance", g_s, "--steps", steps_s, "--out-json", json, NULL};
    if (run_dtrain(args, log, why, sizeof why) != 0) {
        fprintf(stderr, "dtrain report: %s: dtrain eval diffusion failed: %s\n", r->dir, why);
        return;
    }
    json_error_t e;
    o->judge = json_load_file(json, 0, &e);
    if (!json_is_object(o->judge)) {
        fprintf(stderr, "dtrain report: %s: line %d: %s\n", json, e.line, e.text);
        json_decref(o->judge), o->judge = NULL;
    }
}

void outputs_diffusion(const run_files *r, run_outputs *o, const report_opts *opt, const char *work,
                       const char *judge_ckpt) {
    char png[2 * REPORT_PATH], log[2 * REPORT_PATH], steps_s[32], g_s[32], why[512];
    o->repeat_same = -1;
    snprintf(o->grid_png, sizeof o->grid_png, "%s-samples.png", r->name);
    snprintf(png, sizeof png, "%s/%s", opt->out, o->grid_png);
    snprintf(log, sizeof log, "%s/%s-samples.log", work, r->name);
    snprintf(steps_s, sizeof steps_s, "%d", opt->steps);
    snprintf(g_s, sizeof g_s, "%g", opt->guidance);
    char *args[] = {"dtrain", "sample", "diffusion", "--ckpt", (char *)r->ckpt, "--label", "all", "--n", "8",
                    "--guidance", g_s, "--steps", steps_s, "--seed", "1", "--out", png, NULL};
    if (run_dtrain(args, log, why, sizeof why) != 0) {
        fprintf(stderr, "dtrain report: %s: dtrain sample diffusion failed: %s\n", r->dir, why);
        o->grid_png[0] = 0;
        return;
    }
    predictability(r, o, opt, work);
    if (judge_ckpt) judge(r, o, opt, work, judge_ckpt);
    else
        fprintf(stderr, "dtrain report: %s: no LeNet classify run with a checkpoint among the runs (or --judge): "
                        "conditional accuracy and Fréchet distance left out\n", r->dir);
}
