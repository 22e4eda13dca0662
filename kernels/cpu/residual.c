/* residual.c: the skip connection, out = a + b, and its gradient fan-out.
 * Memory-bound like the other elementwise ops, hence the large grain. */
#include "cpu.h"
#include "kernels.h"

#define RESID_GRAIN 65536.0

/* out may alias a or b (in-place update of the residual stream) */
static void add_range(float *out, const float *a, const float *b, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) out[i] = a[i] + b[i];
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
    int nt = kc_threads_for((double)n, RESID_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        add_range(out, a, b, lo, hi);
    }
}

/* dst += src; no restrict: a caller may pass da == db (x + x), which must add twice */
static void acc_range(float *dst, const float *src, size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; i++) dst[i] += src[i];
}

/* da += dout; db += dout. Neither may alias dout (it would be read after being added to). */
void residual_backward(float *da, float *db, const float *dout, size_t n) {
    if (!da && !db) return;
    int nt = kc_threads_for((double)n * ((da != NULL) + (db != NULL)), RESID_GRAIN);
    (void)nt; /* only read by the pragma */
    KC_OMP(omp parallel num_threads(nt))
    {
        size_t lo, hi;
        kc_split16(n, KC_NT(), KC_TID(), &lo, &hi);
        if (da) acc_range(da, dout, lo, hi);
        if (db) acc_range(db, dout, lo, hi);
    }
}
