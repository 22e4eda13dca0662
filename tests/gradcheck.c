#include "gradcheck.h"

#include <math.h>
#include <stdio.h>

#include "rng.h"

void gc_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rng_splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        x[i] = lo + (float)u * (hi - lo);
    }
}

double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

double gc_max_err(const float *got, const double *want, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (isnan(err)) return INFINITY; /* a NaN must fail any tolerance */
        if (err > worst) worst = err;
    }
    return worst;
}

double gradcheck(gc_loss_fn f, void *ctx, float *x, const float *grad, size_t n, double h,
                 size_t max_checks, double tol, const char *what) {
    size_t stride = n <= max_checks ? 1 : n / max_checks;
    double worst = 0;
    size_t worst_i = 0;
    double worst_num = 0;
    for (size_t i = 0; i < n; i += stride) {
        float orig = x[i];
        x[i] = orig + (float)h;
        double lp = f(ctx);
        x[i] = orig - (float)h;
        double lm = f(ctx);
        x[i] = orig;
        /* divide by the perturbation actually applied in float, not the nominal h */
        double num = (lp - lm) / ((double)(orig + (float)h) - (double)(orig - (float)h));
        double ana = grad[i];
        double scale = fmax(1.0, fmax(fabs(num), fabs(ana)));
        double err = fabs(num - ana) / scale;
        if (isnan(err)) err = INFINITY; /* NaN compares false and would pass silently */
        if (err > worst) {
            worst = err;
            worst_i = i;
            worst_num = num;
        }
    }
    if (worst > tol)
        fprintf(stderr, "gradcheck %s: worst error %.3g at [%zu]: numeric %.6g analytic %.6g\n",
                what, worst, worst_i, worst_num, (double)grad[worst_i]);
    return worst;
}
