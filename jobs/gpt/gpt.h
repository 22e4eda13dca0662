/* gpt.h: the `gpt` pretraining job (gpt.c) and its tools (sample.c): `dtrain gpt`,
 * `dtrain sample gpt`, `dtrain eval gpt`. The network is model.h. */
#ifndef DTRAIN_GPT_H
#define DTRAIN_GPT_H

#include "job.h"
#include "model.h"

extern const job gpt_job;

/* The model inside the job's state (the trainer's t->js). */
gpt *gpt_of(void *js);

/* `dtrain sample gpt ...` and `dtrain eval gpt ...` (sample.c). */
int gpt_sample_main(int argc, char **argv);
int gpt_eval_main(int argc, char **argv);

#endif
