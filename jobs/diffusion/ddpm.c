/* ddpm.c: linear beta schedule, forward noising, DDIM and ancestral DDPM sampling.
 * Schedule arithmetic is in double: ab_t falls to ~4e-5 at t = T-1 and its square roots
 * divide the predictions. */
#include "ddpm.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void ddpm_schedule_init(ddpm_schedule *s, int T, double beta_start, double beta_end) {
    s->T = T;
    s->beta = xmalloc((size_t)T * sizeof *s->beta);
    s->alpha_bar = xmalloc((size_t)T * sizeof *s->alpha_bar);
    double ab = 1.0;
    for (int t = 0; t < T; t++) {
        s->beta[t] = T > 1 ? beta_start + (beta_end - beta_start) * t / (T - 1) : beta_start;
        ab *= 1.0 - s->beta[t];
        s->alpha_bar[t] = ab;
    }
}

void ddpm_schedule_free(ddpm_schedule *s) {
    free(s->beta);
    free(s->alpha_bar);
    s->beta = s->alpha_bar = NULL;
}

void ddpm_q_sample(const ddpm_schedule *s, float *xt, const float *x0, const float *eps, int t,
                   size_t n) {
    float a = (float)sqrt(s->alpha_bar[t]), b = (float)sqrt(1.0 - s->alpha_bar[t]);
    for (size_t i = 0; i < n; i++) xt[i] = a * x0[i] + b * eps[i];
}

void ddim_timesteps(int T, int S, int *out) {
    if (S == 1) {
        out[0] = T - 1;
        return;
    }
    for (int i = 0; i < S; i++) out[i] = (int)lround((double)i * (T - 1) / (S - 1));
}

/* The x_0 that x and eps imply at alpha_bar ab, clamped with clip; eps re-derived from it so
 * that the update stays on the line through x_0 and the noise. */
static void predict_x0(float *x0, float *eps, const float *x, size_t n, double ab, int clip) {
    double sa = sqrt(ab), sb = sqrt(1.0 - ab);
    for (size_t i = 0; i < n; i++) {
        double v = ((double)x[i] - sb * eps[i]) / sa;
        if (clip) {
            v = v < -1.0 ? -1.0 : v > 1.0 ? 1.0 : v;
            eps[i] = (float)(((double)x[i] - sa * v) / sb);
        }
        x0[i] = (float)v;
    }
}

void ddim_sample(const ddpm_schedule *s, ddpm_eps_fn f, void *ctx, float *x, size_t n, int S,
                 int clip) {
    int *ts = xmalloc((size_t)S * sizeof *ts);
    float *eps = xmalloc(n * sizeof *eps), *x0 = xmalloc(n * sizeof *x0);
    ddim_timesteps(s->T, S, ts);
    for (int i = S - 1; i >= 0; i--) {
        int t = ts[i];
        double ab = s->alpha_bar[t], ab_prev = i > 0 ? s->alpha_bar[ts[i - 1]] : 1.0;
        f(ctx, x, t, eps);
        predict_x0(x0, eps, x, n, ab, clip);
        double a = sqrt(ab_prev), b = sqrt(1.0 - ab_prev);
        for (size_t k = 0; k < n; k++) x[k] = (float)(a * x0[k] + b * eps[k]);
    }
    free(ts);
    free(eps);
    free(x0);
}

void ddpm_sample(const ddpm_schedule *s, ddpm_eps_fn f, void *ctx, float *x, size_t n, rng *r,
                 int clip) {
    float *eps = xmalloc(n * sizeof *eps), *x0 = xmalloc(n * sizeof *x0);
    for (int t = s->T - 1; t >= 0; t--) {
        double ab = s->alpha_bar[t], ab_prev = t > 0 ? s->alpha_bar[t - 1] : 1.0, beta = s->beta[t];
        f(ctx, x, t, eps);
        predict_x0(x0, eps, x, n, ab, clip);
        /* the mean and variance of q(x_{t-1} | x_t, x_0) */
        double c0 = beta * sqrt(ab_prev) / (1.0 - ab), ct = (1.0 - ab_prev) * sqrt(1.0 - beta) / (1.0 - ab);
        double sd = sqrt(beta * (1.0 - ab_prev) / (1.0 - ab));
        for (size_t k = 0; k < n; k++) {
            double v = c0 * x0[k] + ct * x[k];
            if (t > 0) v += sd * rng_normal(r);
            x[k] = (float)v;
        }
    }
    free(eps);
    free(x0);
}
