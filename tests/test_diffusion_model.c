/* test_diffusion_model.c: the diffusion job's U-Net gradients, schedule, samplers, Fréchet
 * distance and PNG output. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffusion/ddpm.h"
#include "diffusion/frechet.h"
#include "diffusion/pngio.h"
#include "diffusion/model.h"
#include "gradcheck.h"
#include "kernels.h"

/* ---- whole-network gradient check ----------------------------------------------------- */

/* 8x8 images, three levels (8, 4, 2 pixels) with 4/8/8 channels, attention at 2x2 */
typedef struct net_case {
    unet u;
    model m;
    int B;
    float x[3 * 64], proj[3 * 64];
    int32_t t[3], y[3];
} net_case;

/* L = <unet(x), R> in double */
static double net_loss(void *ctx) {
    net_case *c = ctx;
    const float *out = unet_forward(&c->u, &c->m, c->x, c->t, c->y, c->B);
    return gc_dot(out, c->proj, (size_t)c->B * 64);
}

static void setup_net(net_case *c, int blocks) {
    memset(c, 0, sizeof *c);
    unet_config cfg = {.H = 8, .W = 8, .levels = 3, .width = {4, 8, 8}, .blocks = blocks, .groups = 2, .heads = 2};
    char err[256];
    cr_assert_eq(unet_check(&cfg, err, sizeof err), 0, "%s", err);
    unet_build(&c->u, &c->m, &cfg);
    model_alloc(&c->m);
    rng r;
    rng_seed(&r, 7, 0);
    unet_init_params(&c->u, &c->m, &r);
    /* GroupNorm at 1/0 would hide a swapped weight and bias: make them generic */
    for (int i = 0; i < c->m.ntensors; i++)
        if (strstr(c->m.tensors[i].name, "gn"))
            for (size_t k = 0; k < c->m.tensors[i].numel; k++)
                model_param(&c->m, i)[k] += 0.3f * (2.0f * rng_uniform(&r) - 1.0f);
    c->B = 3;
    gc_fill_uniform(c->x, sizeof c->x / sizeof *c->x, 11, -1.5f, 1.5f);
    gc_fill_uniform(c->proj, sizeof c->proj / sizeof *c->proj, 12, -1.0f, 1.0f);
    c->t[0] = 0, c->t[1] = 417, c->t[2] = 999;
    c->y[0] = 3, c->y[1] = UNET_NCLASSES, c->y[2] = 7;
    unet_reserve(&c->u, c->B, 1);
}

static void check_all_params(int blocks) {
    net_case *c = malloc(sizeof *c);
    setup_net(c, blocks);
    model_zero_grads(&c->m);
    unet_forward(&c->u, &c->m, c->x, c->t, c->y, c->B);
    unet_backward(&c->u, &c->m, c->proj, c->B);
    fprintf(stderr, "tiny U-Net (blocks %d): %zu parameters in %d tensors\n", blocks, c->m.nparams, c->m.ntensors);
    double worst = 0;
    for (int i = 0; i < c->m.ntensors; i++) {
        const tensor_info *ti = &c->m.tensors[i];
        double err = gradcheck(net_loss, c, model_param(&c->m, i), model_grad(&c->m, i), ti->numel, 1e-2, 6, 2e-2,
                               ti->name);
        cr_expect_lt(err, 2e-2, "%s: gradient error %g", ti->name, err);
        if (err > worst) worst = err;
    }
    fprintf(stderr, "worst relative gradient error over all tensors: %.2e\n", worst);
    unet_free(&c->u);
    model_free(&c->m);
    free(c);
}

Test(diffusion_unet, gradcheck_every_parameter_one_block) { check_all_params(1); }
Test(diffusion_unet, gradcheck_every_parameter_two_blocks) { check_all_params(2); }

Test(diffusion_unet, default_parameter_count) {
    unet u;
    model m = {0};
    unet_config cfg = {.H = 28, .W = 28, .levels = 3, .width = {32, 64, 64}, .blocks = 1, .groups = 8, .heads = 4};
    unet_build(&u, &m, &cfg);
    fprintf(stderr, "default U-Net (28x28, 32/64/64, 1 block per level): %zu parameters\n", m.nparams);
    cr_assert_gt(m.nparams, 100000);
    free(m.tensors);
}

/* ---- schedule ------------------------------------------------------------------------- */

Test(diffusion_schedule, alpha_bar_matches_closed_form) {
    ddpm_schedule s;
    ddpm_schedule_init(&s, 1000, 1e-4, 0.02);
    cr_assert_float_eq(s.beta[0], 1e-4, 1e-15);
    cr_assert_float_eq(s.beta[999], 0.02, 1e-15);
    for (int t = 0; t < 1000; t += 37) {
        /* prod (1 - beta_s) = exp(sum log(1 - beta_s)) with beta_s from the formula */
        double logsum = 0;
        for (int k = 0; k <= t; k++) logsum += log1p(-(1e-4 + (0.02 - 1e-4) * k / 999.0));
        cr_assert(fabs(s.alpha_bar[t] - exp(logsum)) < 1e-12 * fmax(1, exp(logsum)), "t=%d: %g vs %g", t,
                  s.alpha_bar[t], exp(logsum));
    }
    /* the well-known end point of this schedule: ab_999 ~ 4.04e-5 */
    cr_assert(fabs(s.alpha_bar[999] - 4.036e-5) < 0.01e-5, "alpha_bar[999] = %g", s.alpha_bar[999]);
    float x0[4] = {1, -1, 0.5f, 0}, eps[4] = {0.3f, 0.1f, -2, 1}, xt[4];
    ddpm_q_sample(&s, xt, x0, eps, 500, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(xt[i], sqrt(s.alpha_bar[500]) * x0[i] + sqrt(1 - s.alpha_bar[500]) * eps[i], 1e-6);
    ddpm_schedule_free(&s);
}

Test(diffusion_schedule, ddim_timesteps_span_the_chain) {
    int ts[50];
    ddim_timesteps(1000, 50, ts);
    cr_assert_eq(ts[0], 0);
    cr_assert_eq(ts[49], 999);
    for (int i = 1; i < 50; i++) cr_assert_gt(ts[i], ts[i - 1]);
}

/* ---- samplers with the exact noise of a known x_0 --------------------------------------- */

typedef struct oracle {
    const ddpm_schedule *s;
    const float *x0;
    size_t n;
    int calls;
} oracle;

/* the eps that makes x = sqrt(ab) x0 + sqrt(1 - ab) eps hold exactly */
static void true_eps(void *ctx, const float *x, int t, float *eps) {
    oracle *o = ctx;
    double ab = o->s->alpha_bar[t];
    for (size_t i = 0; i < o->n; i++) eps[i] = (float)((x[i] - sqrt(ab) * o->x0[i]) / sqrt(1 - ab));
    o->calls++;
}

static void check_sampler(int ddpm, int S, int clip) {
    ddpm_schedule s;
    ddpm_schedule_init(&s, 1000, 1e-4, 0.02);
    enum { N = 200 };
    float x0[N], x[N];
    gc_fill_uniform(x0, N, 3, -1, 1);
    rng r;
    rng_seed(&r, 5, 0);
    for (int i = 0; i < N; i++) x[i] = rng_normal(&r);
    oracle o = {&s, x0, N, 0};
    if (ddpm) ddpm_sample(&s, true_eps, &o, x, N, &r, clip);
    else ddim_sample(&s, true_eps, &o, x, N, S, clip);
    cr_assert_eq(o.calls, ddpm ? 1000 : S);
    for (int i = 0; i < N; i++) cr_assert(fabsf(x[i] - x0[i]) < 1e-4f, "x[%d] = %g, x0 = %g", i, x[i], x0[i]);
    ddpm_schedule_free(&s);
}

Test(diffusion_sampler, ddim_with_true_eps_recovers_x0) {
    check_sampler(0, 50, 0);
    check_sampler(0, 50, 1);
    check_sampler(0, 7, 1);
}

Test(diffusion_sampler, ddpm_with_true_eps_recovers_x0) { check_sampler(1, 1000, 1); }

/* ---- Fréchet distance ----------------------------------------------------------------- */

/* a random SPD matrix A A^T / d + 0.1 I */
static void random_spd(double *S, int d, uint64_t seed) {
    float *A = malloc(sizeof *A * (size_t)d * d);
    gc_fill_uniform(A, (size_t)d * d, seed, -1, 1);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += (double)A[i * d + k] * A[j * d + k];
            S[i * d + j] = s / d + (i == j ? 0.1 : 0);
        }
    free(A);
}

Test(diffusion_frechet, identical_gaussians_are_at_zero) {
    enum { D = 84 };
    static double m[D], S[D * D];
    random_spd(S, D, 9);
    for (int i = 0; i < D; i++) m[i] = 0.1 * i;
    double fd = frechet_distance(m, S, m, S, D);
    cr_assert(fabs(fd) < 1e-8, "FD(P, P) = %g", fd);
}

Test(diffusion_frechet, diagonal_and_scaled_gaussians_match_the_closed_form) {
    enum { D = 16 };
    double m1[D], m2[D], S1[D * D] = {0}, S2[D * D] = {0}, want = 0;
    for (int i = 0; i < D; i++) {
        m1[i] = i * 0.5, m2[i] = 1 - i * 0.25;
        double v1 = 0.5 + i, v2 = 2.0 + 0.3 * i;
        S1[i * D + i] = v1, S2[i * D + i] = v2;
        want += (m1[i] - m2[i]) * (m1[i] - m2[i]) + (sqrt(v1) - sqrt(v2)) * (sqrt(v1) - sqrt(v2));
    }
    double fd = frechet_distance(m1, S1, m2, S2, D);
    cr_assert(fabs(fd - want) < 1e-9 * want, "diagonal: %.12g vs %.12g", fd, want);
    /* full covariances, S2 = c^2 S1: tr((S1 S2)^(1/2)) = c tr(S1), FD = (1 - c)^2 tr(S1) */
    double c = 1.7, tr = 0;
    random_spd(S1, D, 4);
    for (int i = 0; i < D * D; i++) S2[i] = c * c * S1[i];
    for (int i = 0; i < D; i++) tr += S1[i * D + i];
    fd = frechet_distance(m1, S1, m1, S2, D);
    cr_assert(fabs(fd - (1 - c) * (1 - c) * tr) < 1e-9 * tr, "scaled: %.12g vs %.12g", fd, (1 - c) * (1 - c) * tr);
}

Test(diffusion_frechet, gauss_fit_mean_and_unbiased_covariance) {
    float feat[3 * 2] = {1, 2, 3, 6, 5, 4};
    double mean[2], cov[4];
    gauss_fit(feat, 3, 2, mean, cov);
    cr_assert_float_eq(mean[0], 3, 1e-12);
    cr_assert_float_eq(mean[1], 4, 1e-12);
    cr_assert_float_eq(cov[0], 4, 1e-12);     /* ((-2)^2 + 0 + 2^2) / 2 */
    cr_assert_float_eq(cov[3], 4, 1e-12);     /* ((-2)^2 + 2^2 + 0) / 2 */
    cr_assert_float_eq(cov[1], 2, 1e-12);     /* ((-2)(-2) + 0 + 2 * 0) / 2 */
    cr_assert_float_eq(cov[2], cov[1], 0);
}

/* ---- PNG ------------------------------------------------------------------------------ */

Test(diffusion_png, grid_written_and_read_back) {
    enum { N = 5, IH = 4, IW = 3 };
    uint8_t imgs[N * IH * IW];
    for (int i = 0; i < N * IH * IW; i++) imgs[i] = (uint8_t)(i * 7 + 1);
    int gw, gh;
    uint8_t *grid = image_grid(imgs, N, IH, IW, 2, 1, &gw, &gh);
    cr_assert_eq(gw, 2 * (IW + 1) + 1);
    cr_assert_eq(gh, 3 * (IH + 1) + 1);
    char path[] = "/tmp/dtrain_png_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[256];
    cr_assert_eq(png_write_gray(path, grid, gw, gh, err, sizeof err), 0, "%s", err);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    cr_assert(png_image_begin_read_from_file(&img, path), "%s", img.message);
    cr_assert_eq((int)img.width, gw);
    cr_assert_eq((int)img.height, gh);
    img.format = PNG_FORMAT_GRAY;
    uint8_t *back = malloc(PNG_IMAGE_SIZE(img));
    cr_assert(png_image_finish_read(&img, NULL, back, 0, NULL), "%s", img.message);
    cr_assert_eq(memcmp(back, grid, (size_t)gw * gh), 0, "pixels differ after the round trip");
    /* image 3 (row 1, column 1) starts at (1 + IW + 1, 1 + IH + 1) */
    cr_assert_eq(back[(1 + IH + 1) * gw + (1 + IW + 1)], imgs[3 * IH * IW]);
    free(back);
    free(grid);
    unlink(path);
}
