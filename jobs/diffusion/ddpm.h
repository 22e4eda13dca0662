/* ddpm.h: the noise schedule and the samplers of a denoising diffusion model.
 *
 * Forward process (Ho et al. 2020): x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps, with
 * ab_t = prod_{s<=t} (1 - beta_s) and betas linear from beta_start to beta_end over T steps
 * (t counts from 0). The samplers take the noise predictor as a callback, so that tests can
 * run them with the exact epsilon of a known x_0. */
#ifndef DTRAIN_DDPM_H
#define DTRAIN_DDPM_H

#include <stddef.h>

#include "rng.h"

typedef struct ddpm_schedule {
    int T;
    double *beta;      /* [T] */
    double *alpha_bar; /* [T] */
} ddpm_schedule;

void ddpm_schedule_init(ddpm_schedule *s, int T, double beta_start, double beta_end);
void ddpm_schedule_free(ddpm_schedule *s);

/* xt[n] = sqrt(ab_t) x0[n] + sqrt(1 - ab_t) eps[n] */
void ddpm_q_sample(const ddpm_schedule *s, float *xt, const float *x0, const float *eps, int t,
                   size_t n);

/* eps[n] = the predicted noise of x[n] at timestep t (every example at the same t). */
typedef void (*ddpm_eps_fn)(void *ctx, const float *x, int t, float *eps);

/* The timesteps of an S-step DDIM run: round(i (T-1)/(S-1)), i = 0..S-1 (ascending). */
void ddim_timesteps(int T, int S, int *out);

/* DDIM (eta = 0, Song et al. 2021) in S steps: x[n] holds x_T ~ N(0, I) on entry and the
 * sample on return. With clip, the predicted x_0 is clamped to [-1, 1] at every step (the
 * data range) and eps re-derived from it. */
void ddim_sample(const ddpm_schedule *s, ddpm_eps_fn f, void *ctx, float *x, size_t n, int S,
                 int clip);

/* Ancestral DDPM sampling over all T steps, posterior variance beta~_t; noise from r. */
void ddpm_sample(const ddpm_schedule *s, ddpm_eps_fn f, void *ctx, float *x, size_t n, rng *r,
                 int clip);

#endif
