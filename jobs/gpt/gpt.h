/* gpt.h: the `gpt` pretraining job (gpt.c) and its tools (sample.c): `dtrain gpt`,
 * `dtrain sample gpt`, `dtrain eval gpt`. The network is model.h. */
#ifndef DTRAIN_GPT_H
#define DTRAIN_GPT_H

#include "job.h"
#include "model.h"
#include "rng.h"

extern const job gpt_job;

/* The model inside the job's state (the trainer's t->js). */
gpt *gpt_of(void *js);

/* Draws a token from logits[V] at `temperature` (0: the argmax) among the top_k largest
 * (0: all), the sampler of sample.c. Never returns an id >= V. `work` holds V floats. */
int gpt_sample_token(const float *logits, int V, float temperature, int top_k, float *work,
                     rng *r);

/* `dtrain sample gpt ...` and `dtrain eval gpt ...` (sample.c). */
int gpt_sample_main(int argc, char **argv);
int gpt_eval_main(int argc, char **argv);

#endif
