/* gradcheck.h: central finite differences against an analytic gradient.
 *
 * The scalar under test is L(x) = f(ctx), computed by the caller in float32 but
 * accumulated in double. For each checked coordinate i:
 *   numeric_i = (L(x + h e_i) - L(x - h e_i)) / (2h)
 * and the error is |numeric_i - analytic_i| / max(1, |numeric_i|, |analytic_i|).
 * Truncation error of the central difference is O(h^2); float32 rounding in the forward
 * pass contributes about eps_f32 * |L| / h. With h = 1e-2 and O(1) values both are ~1e-4,
 * so tolerances of a few 1e-3 catch any real bug (a wrong index or sign gives O(1) error). */
#ifndef DTRAIN_GRADCHECK_H
#define DTRAIN_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

typedef double (*gc_loss_fn)(void *ctx);

/* Perturbs x[i] for i in a deterministic sample of at most max_checks coordinates (all if
 * n <= max_checks), compares with grad[i]; returns the worst error and prints the worst
 * coordinate to stderr when it exceeds tol. */
double gradcheck(gc_loss_fn f, void *ctx, float *x, const float *grad, size_t n, double h,
                 size_t max_checks, double tol, const char *what);

/* Deterministic test data: uniform in [lo, hi) from a 64-bit seed. */
void gc_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

/* Worst |got[i] - want[i]| / max(1, |want[i]|): a float32 result against a double
 * reference, relative for large values and absolute for small ones. */
double gc_max_err(const float *got, const double *want, size_t n);

/* sum_i a[i] * b[i] in double: the usual L = <out, R> projection of an op's output. */
double gc_dot(const float *a, const float *b, size_t n);

#endif
