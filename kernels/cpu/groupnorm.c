/* groupnorm.c: group normalisation over NCHW maps, inp[B,C,HW] with C = G * Cg.
 *
 * Group (b, g) is the contiguous run of Cg * HW floats at inp + (b C + g Cg) HW; its n
 * values share one mean and rstd, and channel c of it is scaled by weight[c] and shifted
 * by bias[c]. With xhat = (x - mean) rstd and gw = dout * weight[c], the gradient is the
 * layernorm one taken over the whole group:
 *   dx = rstd (gw - mean_group(gw) - xhat mean_group(gw xhat))
 * Both group means are weighted sums of two per-channel sums,
 *   s1[b,c] = sum_hw dout,   s2[b,c] = sum_hw dout xhat,
 * which are also what dbias[c] and dweight[c] add up over the batch. So the backward pass
 * reads inp and dout once per group for the sums and once more for dx, and the parameter
 * gradients only reduce the stored [B,C] sums.
 *
 * Threads take whole groups. The parameter reduction runs after a barrier with threads
 * taking channels, each summing its channels' s1/s2 over b in order, so no result depends
 * on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"
#include "kernels.h"
#include "vecmath.h"

#define GN_EPS   1e-5f
#define GN_GRAIN 16384.0 /* floats per thread */

static void check_groups(int C, int G, const char *op) {
    if (G <= 0 || C % G != 0) {
        fprintf(stderr, "%s: C = %d channels do not split into G = %d groups\n", op, C, G);
        abort();
    }
}

/* sum_i (x[i] - m) * y[i] in 16 lanes (see vm_sum). Products and sums are separate
 * roundings on purpose: with fmaf GCC 12 leaves these loops scalar once they are inlined
 * into a loop over channels (2.4x slower groupnorm forward). */
static float centred_dot(const float *restrict x, const float *restrict y, float m, int n) {
    float acc[VM_LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) acc[k] += (x[i + k] - m) * y[i + k];
    for (; i < n; i++) tail += (x[i] - m) * y[i];
    return vm_fold_sum(acc) + tail;
}

/* sum_i (x[i] - m)^2: both factors centred (centred_dot(x, x) would cancel for large m) */
static float centred_sq(const float *x, float m, int n) {
    float acc[VM_LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) {
            float d = x[i + k] - m;
            acc[k] += d * d;
        }
    for (; i < n; i++) tail += (x[i] - m) * (x[i] - m);
    return vm_fold_sum(acc) + tail;
}

/* mean and rstd of one group x[Cg,HW]. Summed channel by channel (each channel in lanes,
 * then the channel totals), so no single float accumulator takes more than ~HW/16 + Cg
 * terms; the variance is two-pass (of centred values), which does not cancel when
 * |mean| >> std as E[x^2] - mean^2 would. */
static void group_stats(const float *x, int Cg, int HW, float *mean, float *rstd) {
    float n = (float)Cg * (float)HW, s = 0.0f, v = 0.0f;
    for (int c = 0; c < Cg; c++) s += vm_sum(x + (size_t)c * HW, HW);
    float m = s / n;
    for (int c = 0; c < Cg; c++) v += centred_sq(x + (size_t)c * HW, m, HW);
    *mean = m;
    *rstd = 1.0f / sqrtf(v / n + GN_EPS);
}

/* out[HW] = (x - m) * a + sh for one channel (a = rstd * weight, sh = bias) */
static void scale_shift(float *restrict out, const float *restrict x, float m, float a, float sh,
                        int HW) {
    for (int i = 0; i < HW; i++) out[i] = fmaf(x[i] - m, a, sh);
}

/* groups [lo, hi) of the flat [B*G] list; bias may be NULL (no shift), as in layernorm */
static void norm_groups(float *out, float *mean, float *rstd, const float *inp, const float *w,
                        const float *bias, int C, int HW, int G, int lo, int hi) {
    int Cg = C / G;
    for (int bg = lo; bg < hi; bg++) {
        size_t at = (size_t)bg * Cg * HW; /* (b C + g Cg) HW, as C = G Cg */
        int c0 = (bg % G) * Cg;
        float m, r;
        group_stats(inp + at, Cg, HW, &m, &r);
        mean[bg] = m;
        rstd[bg] = r;
        for (int c = 0; c < Cg; c++) {
            size_t ch = at + (size_t)c * HW;
            scale_shift(out + ch, inp + ch, m, r * w[c0 + c], bias ? bias[c0 + c] : 0.0f, HW);
        }
    }
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int C, int HW, int G) {
    check_groups(C, G, "groupnorm_forward");
    int nt = kc_threads_for((double)B * C * HW, GN_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(B * G, KC_NT(), KC_TID(), &lo, &hi);
        norm_groups(out, mean, rstd, inp, weight, bias, C, HW, G, lo, hi);
    }
}

/* ---- backward ------------------------------------------------------------------------- */

/* what the backward pass of one call shares between its threads */
typedef struct {
    float *dinp;
    const float *dout, *inp, *w, *mean, *rstd;
    float *s1, *s2; /* [B,C] per-channel sums, NULL unless dweight or dbias is wanted */
    int C, HW, G;
} gn_back;

/* d[HW] += a * g - k0 - (x - m) * k1: one channel's dx, with the group constants folded
 * (a = rstd w[c], k0 = rstd mean(gw), k1 = rstd^2 mean(gw xhat)) */
static void dx_channel(float *restrict d, const float *restrict g, const float *restrict x,
                       float m, float a, float k0, float k1, int HW) {
    for (int i = 0; i < HW; i++) d[i] += fmaf(a, g[i], -k0) - (x[i] - m) * k1;
}

/* group bg: its channels' s1, s2 (stored when wanted), then its dx when wanted */
static void back_group(const gn_back *p, int bg) {
    int Cg = p->C / p->G, HW = p->HW, c0 = (bg % p->G) * Cg;
    size_t at = (size_t)bg * Cg * HW, sc = (size_t)(bg / p->G) * p->C + c0;
    float m = p->mean[bg], r = p->rstd[bg], mg = 0.0f, mgx = 0.0f;
    for (int c = 0; c < Cg; c++) {
        const float *g = p->dout + at + (size_t)c * HW, *x = p->inp + at + (size_t)c * HW;
        float s1 = vm_sum(g, HW), s2 = centred_dot(x, g, m, HW) * r;
        mg = fmaf(p->w[c0 + c], s1, mg);
        mgx = fmaf(p->w[c0 + c], s2, mgx);
        if (p->s1) {
            p->s1[sc + c] = s1;
            p->s2[sc + c] = s2;
        }
    }
    if (!p->dinp) return;
    float n = (float)Cg * (float)HW;
    mg /= n;
    mgx /= n;
    for (int c = 0; c < Cg; c++) {
        size_t ch = at + (size_t)c * HW;
        dx_channel(p->dinp + ch, p->dout + ch, p->inp + ch, m, r * p->w[c0 + c], r * mg,
                   r * r * mgx, HW);
    }
}

/* dweight[c] += sum_b s2[b,c], dbias[c] += sum_b s1[b,c] for c in [c0, c1), b in order */
static void reduce_params(float *dw, float *db, const float *s1, const float *s2, int B, int C,
                          int c0, int c1) {
    for (int c = c0; c < c1; c++) {
        float a1 = 0.0f, a2 = 0.0f;
        for (int b = 0; b < B; b++) {
            a1 += s1[(size_t)b * C + c];
            a2 += s2[(size_t)b * C + c];
        }
        if (db) db[c] += a1;
        if (dw) dw[c] += a2;
    }
}

void groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int C, int HW, int G) {
    if (!dinp && !dweight && !dbias) return;
    check_groups(C, G, "groupnorm_backward");
    int params = dweight || dbias;
    /* the [B,C] sums live for one call: small (2 B C floats), aborts if unavailable */
    float *sums = params ? kernels_alloc(2 * (size_t)B * C) : NULL;
    gn_back p = {dinp, dout, inp, weight, mean, rstd, sums,
                 sums ? sums + (size_t)B * C : NULL, C, HW, G};
    int nt = kc_threads_for((double)B * C * HW * (1 + (dinp != NULL)), GN_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        int lo, hi;
        kc_split(B * G, KC_NT(), KC_TID(), &lo, &hi);
        for (int bg = lo; bg < hi; bg++) back_group(&p, bg);
        if (params) {
            KC_OMP(omp barrier) /* every group's sums are stored */
            size_t c0, c1;
            kc_split16((size_t)C, KC_NT(), KC_TID(), &c0, &c1);
            reduce_params(dweight, dbias, p.s1, p.s2, B, C, (int)c0, (int)c1);
        }
    }
    kernels_free(sums);
}
