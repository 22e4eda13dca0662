/* linreg.h: the fourth job of README's "Add a job": linear regression on synthetic data. */
#ifndef DTRAIN_LINREG_H
#define DTRAIN_LINREG_H

#include "job.h"

extern const job linreg_job;

#endif
