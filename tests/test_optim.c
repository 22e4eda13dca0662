/* Optimizers, clipping and LR schedules against references.
 * The expected parameters after ten steps were computed with PyTorch 1.13's
 * torch.optim.{Adam,AdamW,SGD} in float32 on the same start point and gradient rule
 * (g = 2p - 1 + 0.1k at step k), i.e. a fixed trajectory that depends on the update. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "optim.h"
#include "params.h"

static const float start[5] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f};

static void run(const char *name, float lr, float b1, float b2, float wd, float *out) {
    model m = {0};
    model_add(&m, "w", 1, (int[]){5}, 1);
    model_alloc(&m);
    memcpy(m.params, start, sizeof start);
    optimizer o;
    cr_assert_eq(optim_init(&o, name, &m, b1, b2, 1e-8f, wd, 0.9f), 0);
    for (int k = 0; k < 10; k++) {
        model_zero_grads(&m);
        for (int i = 0; i < 5; i++) m.grads[i] = 2.0f * m.params[i] - 1.0f + 0.1f * (float)k;
        optim_step(&o, &m, lr);
    }
    memcpy(out, m.params, sizeof start);
    optim_free(&o);
    model_free(&m);
}

static void expect(const float *got, const float *want, const char *what) {
    for (int i = 0; i < 5; i++)
        cr_expect(fabsf(got[i] - want[i]) <= 2e-6f * fmaxf(1.0f, fabsf(want[i])),
                  "%s[%d]: got %.9g, PyTorch %.9g", what, i, got[i], want[i]);
}

Test(optim, adam_matches_pytorch) {
    float p[5], want[5] = {0.407520384f, -0.901815057f, 1.89931226f, 0.0882915258f, 2.89955091f};
    run("adam", 0.01f, 0.9f, 0.999f, 0.01f, p);
    expect(p, want, "adam");
}

Test(optim, adamw_matches_pytorch) {
    float p[5], want[5] = {0.413701147f, -0.892223895f, 1.8799417f, 0.0882485062f, 2.87020159f};
    run("adamw", 0.01f, 0.9f, 0.99f, 0.1f, p);
    expect(p, want, "adamw");
}

Test(optim, sgd_momentum_matches_pytorch) {
    float p[5], want[5] = {0.0697692186f, 0.952301681f, -0.812763035f, 0.363946706f, -1.40111804f};
    run("sgd", 0.05f, 0.9f, 0.999f, 0.01f, p);
    expect(p, want, "sgd");
}

Test(optim, unknown_name_is_refused) {
    model m = {0};
    model_add(&m, "w", 1, (int[]){3}, 1);
    model_alloc(&m);
    optimizer o;
    cr_expect_eq(optim_init(&o, "lamb", &m, 0.9f, 0.999f, 1e-8f, 0, 0), -1);
    model_free(&m);
}

Test(optim, decay_only_on_flagged_tensors) {
    model m = {0};
    model_add(&m, "w", 2, (int[]){2, 2}, 1);
    model_add(&m, "b", 1, (int[]){2}, 0);
    model_alloc(&m);
    for (size_t i = 0; i < m.nfloats; i++) m.params[i] = 1.0f;
    optimizer o;
    optim_init(&o, "adamw", &m, 0.9f, 0.999f, 1e-8f, 0.5f, 0);
    optim_step(&o, &m, 0.1f); /* zero gradients: only decoupled decay moves anything */
    float *w = model_param(&m, 0), *b = model_param(&m, 1);
    cr_expect_float_eq(w[0], 0.95f, 1e-7f);
    cr_expect_float_eq(b[0], 1.0f, 1e-7f);
    optim_free(&o);
    model_free(&m);
}

Test(optim, clip_scales_to_max_norm) {
    model m = {0};
    model_add(&m, "a", 1, (int[]){3}, 1);
    model_add(&m, "b", 1, (int[]){1}, 0);
    model_alloc(&m);
    float *ga = model_grad(&m, 0), *gb = model_grad(&m, 1);
    ga[0] = 3, ga[1] = 0, ga[2] = 0, gb[0] = 4; /* norm 5 across two tensors */
    double norm = clip_grad_norm(&m, 1.0);
    cr_expect_float_eq(norm, 5.0, 1e-9);
    cr_expect_float_eq(ga[0], 0.6f, 1e-5f);
    cr_expect_float_eq(gb[0], 0.8f, 1e-5f);
    norm = clip_grad_norm(&m, 10.0); /* under the limit: untouched */
    cr_expect_float_eq(norm, 1.0, 1e-5);
    cr_expect_float_eq(gb[0], 0.8f, 1e-5f);
    model_free(&m);
}

Test(schedule, warmup_then_cosine) {
    lr_schedule s = {LR_COSINE, 1e-3, 1e-4, 100, 2000};
    cr_expect_float_eq(lr_at(&s, 0), 1e-5, 1e-12);
    cr_expect_float_eq(lr_at(&s, 49), 5e-4, 1e-12);
    cr_expect_float_eq(lr_at(&s, 100), 1e-3, 1e-12);
    cr_expect_float_eq(lr_at(&s, 1050), 5.5e-4, 1e-9); /* half way: the mean of lr and min_lr */
    cr_expect_float_eq(lr_at(&s, 2000), 1e-4, 1e-12);
    cr_expect_float_eq(lr_at(&s, 5000), 1e-4, 1e-12);
    for (long k = 101; k < 2000; k++) cr_expect(lr_at(&s, k) <= lr_at(&s, k - 1));
}

Test(schedule, constant) {
    lr_schedule s = {LR_CONSTANT, 3e-4, 0, 0, 100};
    cr_expect_float_eq(lr_at(&s, 0), 3e-4, 1e-15);
    cr_expect_float_eq(lr_at(&s, 99999), 3e-4, 1e-15);
}
