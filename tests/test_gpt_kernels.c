/* test_gpt_kernels.c: the transformer ops (embedding, layernorm, attention, gelu, residual)
 * against double-precision references written here, and their gradients against central
 * finite differences of L = <out, R> for a fixed random R (so dout = R).
 *
 * Tolerances (see gradcheck.h for the error model; errors are relative above 1, absolute
 * below):
 *  FWD_TOL 1e-5: every forward is a short float32 computation on O(1) values (sums of at
 *    most ~200 terms, one exp per element with ~1 ulp error); measured errors are <= 5e-7.
 *  GRAD_TOL 1e-3 (h = 1e-2): embedding and residual are linear, so only float32 rounding of
 *    L remains (~eps_f32 |L| / h ~ 1e-5). Layernorm, softmax-attention and GELU are smooth
 *    with O(1) third derivatives on these inputs, so the O(h^2) truncation term is ~1e-4;
 *    measured worst errors are <= 7e-5. A wrong index, sign or missing term is O(1e-1).
 *  ACC_TOL 1e-6: accumulating onto an existing gradient changes only the last rounding.
 *  EXP_TOL 2.4e-7: vm_expf, the exp inside GELU and softmax, within 2 ulp (2 * 2^-23
 *    relative) of the double exp; measured 7.4e-8.
 * Everything else (causality, NULL gradients, thread counts) is compared exactly.
 *
 * Threads: the finite-difference checks run at one thread: they call the forward hundreds of
 * times, and on a busy 2-core machine each OpenMP fork/join can wait a scheduler tick for a
 * descheduled worker. The threaded paths are still covered: the other tests force them on
 * (kc_force_parallel) and the determinism test requires results bit-identical to one
 * thread's. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "cpu/cpu.h"
#include "cpu/vecmath.h"
#include "gradcheck.h"
#include "kernels.h"

#define FWD_TOL 1e-5
#define GRAD_TOL 1e-3
#define ACC_TOL 1e-6
#define EXP_TOL 2.4e-7
#define H 1e-2
#define MAX_CHECKS 300

/* ---- helpers -------------------------------------------------------------------------- */

static void expect_fwd(const float *got, const double *want, size_t n, const char *what) {
    double err = gc_max_err(got, want, n);
    cr_expect(err < FWD_TOL, "%s: forward error %g", what, err);
}

static void expect_grad(gc_loss_fn f, void *ctx, float *x, const float *g, size_t n,
                        const char *what) {
    double err = gradcheck(f, ctx, x, g, n, H, MAX_CHECKS, GRAD_TOL, what);
    cr_expect(err < GRAD_TOL, "%s: gradient error %g", what, err);
}

/* ---- vm_expf -------------------------------------------------------------------------- */

Test(gpt_vecmath, expf_is_accurate_and_clamped) {
    double worst = 0;
    for (int i = 0; i < 175000; i++) { /* [-87, 88): inside the clamp */
        float x = -87.0f + 0.001f * (float)i;
        double want = exp((double)x);
        double err = fabs((double)vm_expf(x) - want) / want;
        if (err > worst) worst = err;
    }
    cr_expect(worst < EXP_TOL, "vm_expf relative error %g", worst);
    cr_expect(vm_expf(-1000.0f) > 0.0f && vm_expf(-1000.0f) < 2e-38f);
    cr_expect(isfinite(vm_expf(1000.0f)) && vm_expf(1000.0f) > 1e38f);
    cr_expect(vm_expf(-INFINITY) >= 0.0f && vm_expf(-INFINITY) < 2e-38f);
    cr_expect(isnan(vm_expf(NAN)));
    cr_expect(vm_expf(0.0f) == 1.0f);
}

/* ---- embedding ------------------------------------------------------------------------ */

typedef struct {
    int B, T, C, V;
    int32_t *tokens;
    float *wte, *wpe, *out, *R;
} emb_case;

static emb_case emb_make(int B, int T, int C, int V, uint64_t seed) {
    emb_case e = {B, T, C, V, NULL, NULL, NULL, NULL, NULL};
    e.tokens = malloc(sizeof(int32_t) * (size_t)B * T);
    cr_assert(e.tokens != NULL);
    /* few distinct ids, so the scatter-add must combine repeated tokens */
    for (int n = 0; n < B * T; n++) e.tokens[n] = (int32_t)((n * 7 + (int)seed) % V);
    e.wte = rand_floats((size_t)V * C, seed, -1, 1);
    e.wpe = rand_floats((size_t)T * C, seed + 1, -1, 1);
    e.R = rand_floats((size_t)B * T * C, seed + 2, -1, 1);
    e.out = kernels_alloc((size_t)B * T * C);
    return e;
}

static void emb_free(emb_case *e) {
    free(e->tokens);
    kernels_free(e->wte);
    kernels_free(e->wpe);
    kernels_free(e->R);
    kernels_free(e->out);
}

static double emb_loss(void *ctx) {
    emb_case *e = ctx;
    embedding_forward(e->out, e->tokens, e->wte, e->wpe, e->B, e->T, e->C);
    return gc_dot(e->out, e->R, (size_t)e->B * e->T * e->C);
}

static void emb_backward(const emb_case *e, float *dwte, float *dwpe) {
    embedding_backward(dwte, dwpe, e->R, e->tokens, e->B, e->T, e->C);
}

Test(gpt_embedding, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    emb_case e = emb_make(3, 5, 20, 4, 11);
    size_t n = (size_t)e.B * e.T * e.C;
    double *ref = dalloc(n);
    for (int b = 0; b < e.B; b++)
        for (int t = 0; t < e.T; t++)
            for (int c = 0; c < e.C; c++) {
                size_t row = (size_t)b * e.T + t;
                ref[row * e.C + c] =
                    (double)e.wte[(size_t)e.tokens[row] * e.C + c] + e.wpe[(size_t)t * e.C + c];
            }
    embedding_forward(e.out, e.tokens, e.wte, e.wpe, e.B, e.T, e.C);
    expect_fwd(e.out, ref, n, "embedding");
    free(ref);
    emb_free(&e);
}

Test(gpt_embedding, backward_matches_finite_differences) {
    kernels_set_threads(1); /* see "Threads" above */
    emb_case e = emb_make(3, 5, 20, 4, 12);
    float *dwte = kernels_alloc((size_t)e.V * e.C), *dwpe = kernels_alloc((size_t)e.T * e.C);
    emb_backward(&e, dwte, dwpe);
    expect_grad(emb_loss, &e, e.wte, dwte, (size_t)e.V * e.C, "embedding dwte");
    expect_grad(emb_loss, &e, e.wpe, dwpe, (size_t)e.T * e.C, "embedding dwpe");
    kernels_free(dwte);
    kernels_free(dwpe);
    emb_free(&e);
}

Test(gpt_embedding, backward_accumulates_and_skips_null) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    emb_case e = emb_make(2, 6, 33, 5, 13);
    size_t nte = (size_t)e.V * e.C, npe = (size_t)e.T * e.C;
    float *te1 = kernels_alloc(nte), *pe1 = kernels_alloc(npe);
    emb_backward(&e, te1, pe1);
    float *te2 = copy_of(te1, nte), *pe2 = copy_of(pe1, npe);
    emb_backward(&e, te2, pe2); /* onto the first result: 2x */
    expect_sum(te2, te1, te1, nte, ACC_TOL, "dwte twice");
    expect_sum(pe2, pe1, pe1, npe, ACC_TOL, "dwpe twice");
    float *te3 = kernels_alloc(nte), *pe3 = kernels_alloc(npe);
    emb_backward(&e, te3, NULL);
    emb_backward(&e, NULL, pe3);
    emb_backward(&e, NULL, NULL);
    expect_same(te3, te1, nte, "dwte alone");
    expect_same(pe3, pe1, npe, "dwpe alone");
    float *bufs[] = {te1, pe1, te2, pe2, te3, pe3};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) kernels_free(bufs[i]);
    emb_free(&e);
}

/* ids >= V cannot be caught (the signature has no V); negative ones are */
Test(gpt_embedding, negative_token_aborts, .signal = SIGABRT) {
    emb_case e = emb_make(1, 3, 4, 2, 14);
    e.tokens[2] = -1;
    embedding_forward(e.out, e.tokens, e.wte, e.wpe, e.B, e.T, e.C);
}

/* ---- layernorm ------------------------------------------------------------------------ */

typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *R;
} ln_case;

static ln_case ln_make(int N, int C, uint64_t seed) {
    ln_case l = {N, C, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    l.inp = rand_floats((size_t)N * C, seed, -1, 1);
    l.w = rand_floats((size_t)C, seed + 1, 0.5f, 1.5f);
    l.b = rand_floats((size_t)C, seed + 2, -0.5f, 0.5f);
    l.R = rand_floats((size_t)N * C, seed + 3, -1, 1);
    l.out = kernels_alloc((size_t)N * C);
    l.mean = kernels_alloc((size_t)N);
    l.rstd = kernels_alloc((size_t)N);
    return l;
}

static void ln_free(ln_case *l) {
    float *p[] = {l->inp, l->w, l->b, l->R, l->out, l->mean, l->rstd};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) kernels_free(p[i]);
}

/* out, mean, rstd in double; bias may be NULL */
static void ln_ref(const ln_case *l, const float *bias, double *out, double *mean,
                   double *rstd) {
    for (int n = 0; n < l->N; n++) {
        const float *x = l->inp + (size_t)n * l->C;
        double m = 0, v = 0;
        for (int c = 0; c < l->C; c++) m += x[c];
        m /= l->C;
        for (int c = 0; c < l->C; c++) v += (x[c] - m) * (x[c] - m);
        double r = 1.0 / sqrt(v / l->C + 1e-5);
        mean[n] = m;
        rstd[n] = r;
        for (int c = 0; c < l->C; c++)
            out[(size_t)n * l->C + c] = (x[c] - m) * r * l->w[c] + (bias ? bias[c] : 0.0);
    }
}

static void ln_check_forward(ln_case *l, int with_bias, const char *what) {
    const float *bias = with_bias ? l->b : NULL;
    size_t n = (size_t)l->N * l->C;
    double *out = dalloc(n), *mean = dalloc((size_t)l->N), *rstd = dalloc((size_t)l->N);
    ln_ref(l, bias, out, mean, rstd);
    layernorm_forward(l->out, l->mean, l->rstd, l->inp, l->w, bias, l->N, l->C);
    expect_fwd(l->out, out, n, what);
    expect_fwd(l->mean, mean, (size_t)l->N, what);
    /* rstd is 1/std, large for flat rows: compared relatively, whatever its size */
    double worst = 0;
    for (int i = 0; i < l->N; i++) {
        double err = fabs(l->rstd[i] / rstd[i] - 1.0);
        if (!(err <= worst)) worst = err;
    }
    cr_expect(worst < FWD_TOL, "%s: rstd relative error %g", what, worst);
    free(out);
    free(mean);
    free(rstd);
}

Test(gpt_layernorm, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    static const int shapes[][2] = {{6, 20}, {5, 32}, {1, 1}, {3, 128}, {4, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ln_case l = ln_make(shapes[s][0], shapes[s][1], 30 + s);
        char what[64];
        snprintf(what, sizeof what, "layernorm N=%d C=%d", l.N, l.C);
        ln_check_forward(&l, 1, what);
        ln_check_forward(&l, 0, what);
        ln_free(&l);
    }
}

/* A large common offset. The float mean of values near 1000 carries rounding of a few
 * ulp(1000) ~ 1e-4, which xhat = (x - mean) rstd inherits at rstd ~ 1.7: hence 5e-4 here.
 * A one-pass E[x^2] - mean^2 variance would instead be off by ~10% (ulp(1e6) / var). */
Test(gpt_layernorm, forward_is_stable_under_a_large_mean) {
    kernels_set_threads(1);
    ln_case l = ln_make(4, 64, 40);
    for (size_t i = 0; i < (size_t)l.N * l.C; i++) l.inp[i] = 1000.0f + l.inp[i];
    size_t n = (size_t)l.N * l.C;
    double *out = dalloc(n), *mean = dalloc((size_t)l.N), *rstd = dalloc((size_t)l.N);
    ln_ref(&l, l.b, out, mean, rstd);
    layernorm_forward(l.out, l.mean, l.rstd, l.inp, l.w, l.b, l.N, l.C);
    double err = gc_max_err(l.out, out, n);
    cr_expect(err < 5e-4, "layernorm offset 1000: forward error %g", err);
    free(out);
    free(mean);
    free(rstd);
    ln_free(&l);
}

static double ln_loss(void *ctx) {
    ln_case *l = ctx;
    layernorm_forward(l->out, l->mean, l->rstd, l->inp, l->w, l->b, l->N, l->C);
    return gc_dot(l->out, l->R, (size_t)l->N * l->C);
}

/* forward first: backward reads the saved mean and rstd */
static void ln_backward(ln_case *l, float *dinp, float *dw, float *db) {
    layernorm_forward(l->out, l->mean, l->rstd, l->inp, l->w, l->b, l->N, l->C);
    layernorm_backward(dinp, dw, db, l->R, l->inp, l->w, l->mean, l->rstd, l->N, l->C);
}

Test(gpt_layernorm, backward_matches_finite_differences) {
    kernels_set_threads(1); /* see "Threads" above */
    static const int shapes[][2] = {{6, 20}, {3, 32}, {2, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ln_case l = ln_make(shapes[s][0], shapes[s][1], 50 + s);
        size_t n = (size_t)l.N * l.C;
        float *dinp = kernels_alloc(n), *dw = kernels_alloc((size_t)l.C),
              *db = kernels_alloc((size_t)l.C);
        ln_backward(&l, dinp, dw, db);
        char what[64];
        snprintf(what, sizeof what, "layernorm %dx%d dinp", l.N, l.C);
        expect_grad(ln_loss, &l, l.inp, dinp, n, what);
        snprintf(what, sizeof what, "layernorm %dx%d dweight", l.N, l.C);
        expect_grad(ln_loss, &l, l.w, dw, (size_t)l.C, what);
        snprintf(what, sizeof what, "layernorm %dx%d dbias", l.N, l.C);
        expect_grad(ln_loss, &l, l.b, db, (size_t)l.C, what);
        kernels_free(dinp);
        kernels_free(dw);
        kernels_free(db);
        ln_free(&l);
    }
}

Test(gpt_layernorm, backward_accumulates_and_skips_null) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    ln_case l = ln_make(7, 40, 60);
    size_t n[3] = {(size_t)l.N * l.C, (size_t)l.C, (size_t)l.C};
    float *once[3], *twice[3];
    for (int k = 0; k < 3; k++) once[k] = kernels_alloc(n[k]);
    ln_backward(&l, once[0], once[1], once[2]);
    for (int k = 0; k < 3; k++) twice[k] = copy_of(once[k], n[k]);
    ln_backward(&l, twice[0], twice[1], twice[2]);
    expect_sum(twice[0], once[0], once[0], n[0], ACC_TOL, "layernorm dinp twice");
    expect_sum(twice[1], once[1], once[1], n[1], ACC_TOL, "layernorm dweight twice");
    expect_sum(twice[2], once[2], once[2], n[2], ACC_TOL, "layernorm dbias twice");
    /* every subset of the three gradients: the requested ones equal the full call's */
    for (int mask = 0; mask < 8; mask++) {
        float *some[3];
        for (int k = 0; k < 3; k++) some[k] = kernels_alloc(n[k]);
        ln_backward(&l, mask & 1 ? some[0] : NULL, mask & 2 ? some[1] : NULL,
                    mask & 4 ? some[2] : NULL);
        for (int k = 0; k < 3; k++) {
            if (mask >> k & 1) expect_same(some[k], once[k], n[k], "layernorm subset");
            kernels_free(some[k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        kernels_free(once[k]);
        kernels_free(twice[k]);
    }
    ln_free(&l);
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct {
    int B, T, C, NH;
    float *qkv, *out, *att, *R, *scratch;
} att_case;

static att_case att_make(int B, int T, int C, int NH, uint64_t seed, float range) {
    att_case a = {B, T, C, NH, NULL, NULL, NULL, NULL, NULL};
    a.qkv = rand_floats((size_t)B * T * 3 * C, seed, -range, range);
    a.R = rand_floats((size_t)B * T * C, seed + 1, -1, 1);
    a.out = kernels_alloc((size_t)B * T * C);
    a.att = kernels_alloc((size_t)B * NH * T * T);
    /* the op must not read scratch before writing it: NaN would show */
    size_t ns = attention_scratch_floats(B, T, C, NH);
    a.scratch = kernels_alloc(ns);
    for (size_t i = 0; i < ns; i++) a.scratch[i] = NAN;
    return a;
}

static void att_free(att_case *a) {
    float *p[] = {a->qkv, a->R, a->out, a->att, a->scratch};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) kernels_free(p[i]);
}

/* out[B,T,C], att[B,NH,T,T] in double, straight from the definition */
static void att_ref(const att_case *a, double *out, double *att) {
    int T = a->T, C = a->C, HS = C / a->NH;
    double *s = dalloc((size_t)T);
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->NH; h++)
            for (int i = 0; i < T; i++) {
                const float *q = a->qkv + ((size_t)b * T + i) * 3 * C + (size_t)h * HS;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const float *k = a->qkv + ((size_t)b * T + j) * 3 * C + C + (size_t)h * HS;
                    double d = 0;
                    for (int x = 0; x < HS; x++) d += (double)q[x] * k[x];
                    s[j] = d / sqrt((double)HS);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
                double *arow = att + (((size_t)b * a->NH + h) * T + i) * T;
                for (int j = 0; j < T; j++) arow[j] = j <= i ? s[j] / sum : 0.0;
                double *o = out + ((size_t)b * T + i) * C + (size_t)h * HS;
                for (int x = 0; x < HS; x++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++)
                        acc += arow[j] * a->qkv[((size_t)b * T + j) * 3 * C + 2 * C +
                                                (size_t)h * HS + x];
                    o[x] = acc;
                }
            }
    free(s);
}

static void att_check_forward(att_case *a, const char *what) {
    size_t no = (size_t)a->B * a->T * a->C, na = (size_t)a->B * a->NH * a->T * a->T;
    double *out = dalloc(no), *att = dalloc(na);
    att_ref(a, out, att);
    for (size_t i = 0; i < na; i++) a->att[i] = 7.0f; /* stale values must be overwritten */
    attention_forward(a->out, a->att, a->qkv, a->B, a->T, a->C, a->NH);
    expect_fwd(a->out, out, no, what);
    expect_fwd(a->att, att, na, what);
    /* above the diagonal: exactly zero, as the contract says */
    for (int bh = 0; bh < a->B * a->NH; bh++)
        for (int i = 0; i < a->T; i++)
            for (int j = i + 1; j < a->T; j++)
                if (a->att[((size_t)bh * a->T + i) * a->T + j] != 0.0f) {
                    cr_expect(0, "%s: att[%d,%d,%d] above the diagonal is not 0", what, bh, i,
                              j);
                    goto done;
                }
done:
    free(out);
    free(att);
}

Test(gpt_attention, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    /* the spec case, one head, odd head sizes, and T past one 128-row causal block */
    static const int shapes[][4] = {{2, 5, 8, 2}, {1, 1, 4, 1}, {3, 17, 12, 3},
                                    {1, 200, 8, 2}, {2, 64, 64, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        att_case a = att_make(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 70 + s, 1);
        char what[64];
        snprintf(what, sizeof what, "attention B=%d T=%d C=%d NH=%d", a.B, a.T, a.C, a.NH);
        att_check_forward(&a, what);
        att_free(&a);
    }
}

/* scores of +-100: softmax without the max subtracted would overflow expf */
Test(gpt_attention, forward_is_stable_for_large_scores) {
    kernels_set_threads(1);
    att_case a = att_make(1, 9, 8, 2, 80, 10);
    att_check_forward(&a, "attention large scores");
    att_free(&a);
}

Test(gpt_attention, is_causal) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    att_case a = att_make(2, 5, 8, 2, 90, 1);
    int T = a.T, C = a.C, t0 = 3;
    size_t no = (size_t)a.B * T * C, na = (size_t)a.B * a.NH * T * T;
    attention_forward(a.out, a.att, a.qkv, a.B, T, C, a.NH);
    float *out0 = copy_of(a.out, no), *att0 = copy_of(a.att, na);
    /* new keys and values for position t0 of sequence 0, every head */
    for (int x = C; x < 3 * C; x++) a.qkv[(size_t)t0 * 3 * C + x] += 0.5f;
    attention_forward(a.out, a.att, a.qkv, a.B, T, C, a.NH);
    for (int i = 0; i < T; i++) {
        int same = 1;
        for (int x = 0; x < C; x++) same &= a.out[(size_t)i * C + x] == out0[(size_t)i * C + x];
        if (i < t0) cr_expect(same, "out[0,%d] changed with a future token", i);
        else cr_expect(!same, "out[0,%d] did not see token %d (test is void)", i, t0);
    }
    for (int h = 0; h < a.NH; h++)
        for (int i = 0; i < t0; i++)
            for (int j = 0; j < T; j++) {
                size_t at = ((size_t)h * T + i) * T + j;
                cr_expect(a.att[at] == att0[at], "att[0,%d,%d,%d] changed", h, i, j);
            }
    /* the other sequence is untouched */
    expect_same(a.out + (size_t)T * C, out0 + (size_t)T * C, (size_t)T * C, "sequence 1");
    kernels_free(out0);
    kernels_free(att0);
    att_free(&a);
}

static double att_loss(void *ctx) {
    att_case *a = ctx;
    attention_forward(a->out, a->att, a->qkv, a->B, a->T, a->C, a->NH);
    return gc_dot(a->out, a->R, (size_t)a->B * a->T * a->C);
}

static void att_backward(att_case *a, float *dqkv) {
    attention_forward(a->out, a->att, a->qkv, a->B, a->T, a->C, a->NH);
    attention_backward(dqkv, a->R, a->qkv, a->att, a->scratch, a->B, a->T, a->C, a->NH);
}

Test(gpt_attention, backward_matches_finite_differences) {
    kernels_set_threads(1); /* see "Threads" above */
    static const int shapes[][4] = {{2, 5, 8, 2}, {1, 3, 4, 1}, {1, 150, 4, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        att_case a = att_make(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], 100 + s, 1);
        size_t n = (size_t)a.B * a.T * 3 * a.C;
        float *dqkv = kernels_alloc(n);
        att_backward(&a, dqkv);
        char what[64];
        snprintf(what, sizeof what, "attention B=%d T=%d C=%d NH=%d dqkv", a.B, a.T, a.C, a.NH);
        expect_grad(att_loss, &a, a.qkv, dqkv, n, what);
        kernels_free(dqkv);
        att_free(&a);
    }
}

Test(gpt_attention, backward_accumulates_and_skips_null) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    att_case a = att_make(2, 6, 8, 2, 110, 1);
    size_t n = (size_t)a.B * a.T * 3 * a.C;
    float *once = kernels_alloc(n);
    att_backward(&a, once);
    float *twice = copy_of(once, n);
    att_backward(&a, twice);
    expect_sum(twice, once, once, n, ACC_TOL, "attention dqkv twice");
    att_backward(&a, NULL); /* must neither crash nor touch anything */
    kernels_free(once);
    kernels_free(twice);
    att_free(&a);
}

Test(gpt_attention, heads_that_do_not_split_c_abort, .signal = SIGABRT) {
    att_case a = att_make(1, 4, 8, 2, 115, 1);
    attention_forward(a.out, a.att, a.qkv, a.B, a.T, 10, 4);
}

/* ---- gelu ----------------------------------------------------------------------------- */

static double gelu_ref(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

Test(gpt_gelu, forward_matches_reference) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    size_t n = 1000;
    float *x = rand_floats(n, 120, -6, 6), *out = kernels_alloc(n);
    float extremes[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 20.0f, -20.0f, 1e4f, -1e4f};
    memcpy(x, extremes, sizeof extremes);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = gelu_ref(x[i]);
    gelu_forward(out, x, n);
    expect_fwd(out, ref, n, "gelu");
    gelu_forward(x, x, n); /* in place */
    expect_same(x, out, n, "gelu in place");
    free(ref);
    kernels_free(x);
    kernels_free(out);
}

typedef struct {
    size_t n;
    float *x, *out, *R;
} gelu_case;

static double gelu_loss(void *ctx) {
    gelu_case *g = ctx;
    gelu_forward(g->out, g->x, g->n);
    return gc_dot(g->out, g->R, g->n);
}

Test(gpt_gelu, backward_matches_finite_differences_and_accumulates) {
    kernels_set_threads(1); /* see "Threads" above */
    gelu_case g = {257, rand_floats(257, 130, -4, 4), kernels_alloc(257), rand_floats(257, 131, -1, 1)};
    float *dx = kernels_alloc(g.n);
    gelu_backward(dx, g.R, g.x, g.n);
    expect_grad(gelu_loss, &g, g.x, dx, g.n, "gelu dinp");
    float *twice = copy_of(dx, g.n);
    gelu_backward(twice, g.R, g.x, g.n);
    expect_sum(twice, dx, dx, g.n, ACC_TOL, "gelu dinp twice");
    gelu_backward(NULL, g.R, g.x, g.n);
    /* far tails: the derivative goes to 1 and 0, with no NaN from exp overflow */
    float tails[] = {-1e4f, -30.0f, 30.0f, 1e4f}, dt[4] = {0}, ones[] = {1, 1, 1, 1};
    gelu_backward(dt, ones, tails, 4);
    cr_expect(dt[0] == 0.0f && dt[1] == 0.0f, "%g %g", dt[0], dt[1]);
    cr_expect(dt[2] == 1.0f && dt[3] == 1.0f, "%g %g", dt[2], dt[3]);
    kernels_free(dx);
    kernels_free(twice);
    kernels_free(g.x);
    kernels_free(g.out);
    kernels_free(g.R);
}

/* ---- residual ------------------------------------------------------------------------- */

Test(gpt_residual, forward_and_backward) {
    kc_force_parallel(1);
    kernels_set_threads(2);
    size_t n = 1001;
    float *a = rand_floats(n, 140, -1, 1), *b = rand_floats(n, 141, -1, 1), *out = kernels_alloc(n);
    float *dout = rand_floats(n, 142, -1, 1), *g0 = rand_floats(n, 143, -1, 1);
    double *ref = dalloc(n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    residual_forward(out, a, b, n);
    expect_fwd(out, ref, n, "residual");
    /* da starts at g0 (accumulation), db at zero; then db alone, da alone, neither */
    float *da = copy_of(g0, n), *db = kernels_alloc(n);
    residual_backward(da, db, dout, n);
    expect_sum(da, g0, dout, n, ACC_TOL, "residual da onto g0");
    expect_same(db, dout, n, "residual db");
    residual_backward(NULL, db, dout, n);
    expect_sum(db, dout, dout, n, ACC_TOL, "residual db twice");
    residual_backward(da, NULL, dout, n);
    residual_backward(NULL, NULL, dout, n);
    float *g1 = kernels_alloc(n);
    for (size_t i = 0; i < n; i++) g1[i] = g0[i] + dout[i];
    expect_sum(da, g1, dout, n, ACC_TOL, "residual da alone");
    /* the same buffer for both inputs (out = x + x) receives the gradient twice */
    float *dx = kernels_alloc(n);
    residual_backward(dx, dx, dout, n);
    expect_sum(dx, dout, dout, n, ACC_TOL, "residual da == db");
    free(ref);
    float *bufs[] = {a, b, out, dout, g0, da, db, g1, dx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) kernels_free(bufs[i]);
}

/* ---- determinism ---------------------------------------------------------------------- */

/* Every op at 1, 2 and 3 threads (forced parallel even at these sizes) gives bit-identical
 * results: no op's summation order depends on the thread count. */
static void run_all(int threads, float *res[6]) {
    kernels_set_threads(threads);
    att_case a = att_make(3, 37, 24, 3, 150, 1);
    size_t nq = (size_t)a.B * a.T * 3 * a.C, no = (size_t)a.B * a.T * a.C;
    res[0] = kernels_alloc(no);
    res[1] = kernels_alloc(nq);
    attention_forward(res[0], a.att, a.qkv, a.B, a.T, a.C, a.NH);
    attention_backward(res[1], a.R, a.qkv, a.att, a.scratch, a.B, a.T, a.C, a.NH);
    ln_case l = ln_make(37, 48, 151);
    res[2] = kernels_alloc((size_t)l.N * l.C + 2 * (size_t)l.C);
    ln_backward(&l, res[2], res[2] + (size_t)l.N * l.C, res[2] + (size_t)l.N * l.C + l.C);
    emb_case e = emb_make(3, 11, 40, 6, 152);
    res[3] = kernels_alloc((size_t)(e.V + e.T) * e.C);
    emb_backward(&e, res[3], res[3] + (size_t)e.V * e.C);
    res[4] = kernels_alloc(no);
    gelu_forward(res[4], a.qkv, no);
    res[5] = kernels_alloc(no);
    gelu_backward(res[5], a.R, a.qkv, no);
    att_free(&a);
    ln_free(&l);
    emb_free(&e);
}

Test(gpt_determinism, results_do_not_depend_on_the_thread_count) {
    kc_force_parallel(1);
    size_t n[6] = {3 * 37 * 24, 3 * 37 * 72, 37 * 48 + 96, (6 + 11) * 40, 3 * 37 * 24,
                   3 * 37 * 24};
    const char *what[6] = {"attention out", "attention dqkv", "layernorm grads",
                           "embedding grads", "gelu", "gelu grad"};
    float *one[6], *other[6];
    run_all(1, one);
    for (int threads = 2; threads <= 3; threads++) {
        run_all(threads, other);
        for (int k = 0; k < 6; k++) {
            expect_same(other[k], one[k], n[k], what[k]);
            kernels_free(other[k]);
        }
    }
    for (int k = 0; k < 6; k++) kernels_free(one[k]);
}
