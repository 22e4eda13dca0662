/* vecmath.h: inline float helpers the transformer kernels share, written so that GCC
 * vectorizes them under strict IEEE rules (no -ffast-math):
 *  - vm_expf: libm's expf is an opaque call that keeps GELU and the attention softmax
 *    scalar (~10x slower than the rest of the step); this one is plain arithmetic.
 *  - vm_sum / vm_dot / vm_max: without -fassociative-math the compiler may not reorder a
 *    float reduction, so a `s += x[i]` loop stays scalar. These keep 16 partial results
 *    (one AVX-512 register) and combine them in a fixed tree, so the order is the same on
 *    every call: the results are deterministic, just not the left-to-right sum. */
#ifndef DTRAIN_KERNELS_CPU_VECMATH_H
#define DTRAIN_KERNELS_CPU_VECMATH_H

#include <math.h>
#include <stdint.h>

#define VM_LANES 16

/* exp(x) to ~2 ulp for x in [-87, 88]; clamped outside (so the result stays a normal,
 * finite float: exp(-87) ~ 1.6e-38, exp(88) ~ 1.7e38); NaN in gives NaN out.
 * x = n ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial (truncation
 * r^8/8! < 6e-9 relative), 2^n built directly in the exponent bits. */
static inline float vm_expf(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : x;     /* comparisons are false for NaN, which passes */
    x = x > 88.0f ? 88.0f : x;
    float t = fmaf(x, 1.44269504f, magic); /* log2(e) */
    float n = t - magic;
    /* ln2 split in two (Cody-Waite) so n * ln2_hi is exact and r keeps its low bits */
    float r = fmaf(n, -0.693145752f, x);
    r = fmaf(n, -1.42860682e-6f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    /* t's low mantissa bits hold n (t stays in [2^23, 2^24)), so 2^n comes from integer
     * arithmetic on the bits, with no float-to-int conversion (undefined for NaN) */
    union { float f; uint32_t u; } bt = {t}, bm = {magic}, two_n;
    two_n.u = (bt.u - bm.u + 127u) << 23;
    return p * two_n.f;
}

/* Folds the 16 partial results in a fixed order: halves, quarters, then pairs. Written out
 * with fresh arrays: GCC 12 compiled the equivalent in-place loop as scalar adds through the
 * stack, which cost a quarter of the attention softmax. */
static inline float vm_fold_sum(const float acc[VM_LANES]) {
    float a8[8], a4[4];
    for (int k = 0; k < 8; k++) a8[k] = acc[k] + acc[k + 8];
    for (int k = 0; k < 4; k++) a4[k] = a8[k] + a8[k + 4];
    return (a4[0] + a4[2]) + (a4[1] + a4[3]);
}

/* sum_i x[i]. The tail goes to its own scalar: indexing acc by a variable there would
 * force acc out of registers for the whole loop. */
static inline float vm_sum(const float *x, int n) {
    float acc[VM_LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) acc[k] += x[i + k];
    for (; i < n; i++) tail += x[i];
    return vm_fold_sum(acc) + tail;
}

/* sum_i x[i] * y[i] */
static inline float vm_dot(const float *x, const float *y, int n) {
    float acc[VM_LANES] = {0}, tail = 0.0f;
    int i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) acc[k] = fmaf(x[i + k], y[i + k], acc[k]);
    for (; i < n; i++) tail = fmaf(x[i], y[i], tail);
    return vm_fold_sum(acc) + tail;
}

/* max_i x[i] for n >= 1. NaN entries are skipped unless x[0] is NaN; callers feed the
 * result to exp, where the NaN entries turn the row into NaN anyway. */
static inline float vm_max(const float *x, int n) {
    float acc[VM_LANES], best = x[0];
    for (int k = 0; k < VM_LANES; k++) acc[k] = x[0];
    int i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES)
        for (int k = 0; k < VM_LANES; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    for (int k = 0; k < VM_LANES; k++) best = acc[k] > best ? acc[k] : best;
    return best;
}

#endif
