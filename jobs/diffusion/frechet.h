/* frechet.h: Gaussian fits of feature sets and the Fréchet distance between them
 * (the FID formula, here on the 84-d features of the LeNet judge). */
#ifndef DTRAIN_FRECHET_H
#define DTRAIN_FRECHET_H

/* mean[d] and unbiased covariance cov[d*d] of feat[n][d], accumulated in double (n >= 2). */
void gauss_fit(const float *feat, int n, int d, double *mean, double *cov);

/* ||m1 - m2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)); -1 if LAPACK fails. */
double frechet_distance(const double *m1, const double *S1, const double *m2, const double *S2, int d);

#endif
