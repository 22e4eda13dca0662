/* compute.c: training compute and data of a run, from its config and parameter count.
 *
 * FLOPs count the matrix products and convolutions only (element-wise work, norms and
 * softmaxes are a few percent), a multiply-add as 2, and a training example as 3 times its
 * forward pass (the backward pass runs two products per forward product: the input's
 * gradient and the weights'). The formulas follow each model's layout in its job. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

static long cfg_long(const run_files *r, const char *key, long dflt) {
    const char *v = run_cfg(r, key);
    return *v ? strtol(v, NULL, 10) : dflt;
}

/* LeNet-5 as jobs/classify builds it on 28x28x1: conv5x5 pad 2 (6), pool, conv5x5 (16),
 * pool, 400 -> 120 -> 84 -> 10; the MLP: 784 -> hidden -> 10 */
static double classify_macs(const run_files *r) {
    if (strcmp(run_cfg(r, "model"), "mlp") == 0) {
        double h = (double)cfg_long(r, "hidden", 256);
        return 784 * h + h * 10;
    }
    return 28.0 * 28 * 6 * 25 + 10.0 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10;
}

/* per token: the weight matrices (the tied LM head included, the position table not) and
 * attention's two T x T products; the vocabulary comes back out of the parameter count */
static double gpt_macs_per_token(const run_files *r) {
    double L = (double)cfg_long(r, "n_layer", 4), C = (double)cfg_long(r, "n_embd", 128);
    double T = (double)cfg_long(r, "block_size", 64), bias = (double)cfg_long(r, "bias", 0);
    int found;
    double params = run_num(r, "params", &found);
    if (!found) return 0;
    double V = (params - T * C - L * (12 * C * C + 2 * C) - C - bias * (11 * C * L + C)) / C;
    if (V < 1) return 0;
    /* causal attention computed in full: QK^T and AV, T x T x C each per sequence */
    return L * 12 * C * C + V * C + L * 2 * T * C;
}

/* the U-Net of jobs/diffusion/unet.c on 28x28: conv in, residual blocks per level down and
 * up (the first block of each up level takes the skip concatenated), attention at the
 * lowest level, conv out, and the timestep MLP */
static double res_macs(double C, double OC, double HW, double E) {
    return HW * 9 * (C * OC + OC * OC) + (C != OC ? HW * C * OC : 0) + E * OC;
}

static double diffusion_macs(const run_files *r) {
    double width[8];
    int L = 0;
    const char *p = run_cfg(r, "channel_mult");
    double ch = (double)cfg_long(r, "channels", 32);
    while (*p && L < 8) {
        width[L++] = ch * strtod(p, NULL);
        p += strcspn(p, ",");
        if (*p) p++;
    }
    if (L == 0) return 0;
    long blocks = cfg_long(r, "blocks", 1);
    double E = 4 * width[0], C = width[0], macs = 28.0 * 28 * 9 * width[0] + width[0] * E + E * E;
    for (int l = 0; l < L; l++)
        for (long b = 0; b < blocks; b++) macs += res_macs(C, width[l], (double)(784 >> (2 * l)), E), C = width[l];
    double N = (double)(784 >> (2 * (L - 1)));
    macs += N * 4 * C * C + 2 * N * N * C;
    for (int l = L - 2; l >= 0; l--) {
        C += width[l];
        for (long b = 0; b < blocks; b++) macs += res_macs(C, width[l], (double)(784 >> (2 * l)), E), C = width[l];
    }
    return macs + 28.0 * 28 * 9 * C;
}

/* first dimension of a dataset in the run's data file; -1 when it cannot be read */
static double data_count(const char *file, const char *dset) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    double n = -1;
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
        if (d >= 0) {
            hid_t s = H5Dget_space(d);
            hsize_t dims[4];
            if (s >= 0 && H5Sget_simple_extent_ndims(s) >= 1 && H5Sget_simple_extent_ndims(s) <= 4 &&
                H5Sget_simple_extent_dims(s, dims, NULL) >= 1)
                n = (double)dims[0];
            if (s >= 0) H5Sclose(s);
            H5Dclose(d);
        }
        H5Fclose(f);
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return n;
}

void flops_estimate(const run_files *r, run_outputs *o) {
    long batch = cfg_long(r, "batch_size", 0) * cfg_long(r, "grad_accum", 1);
    double macs = 0;
    const char *dset = "/train/images";
    if (strcmp(r->job, "classify") == 0) macs = classify_macs(r);
    else if (strcmp(r->job, "diffusion") == 0) macs = diffusion_macs(r);
    else if (strcmp(r->job, "gpt") == 0) {
        macs = gpt_macs_per_token(r);
        batch *= cfg_long(r, "block_size", 64);
        dset = "/train/tokens";
    }
    o->examples_per_step = batch;
    o->flops_per_example = 3 * 2 * macs;
    o->flops_per_step = o->flops_per_example * (double)batch;
    o->train_set = data_count(run_cfg(r, "data"), dset);
}
