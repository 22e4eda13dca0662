/* diffusion.h: the class-conditional DDPM job on MNIST (training, sampling, evaluation). */
#ifndef DTRAIN_DIFFUSION_H
#define DTRAIN_DIFFUSION_H

#include <stdint.h>

#include "ddpm.h"
#include "image_shard.h"
#include "job.h"
#include "trainer.h"
#include "model.h"

extern const job diffusion_job;

/* Forward and backward of the DDPM loss on an explicit batch of n images (n x H x W x 1
 * uint8) with labels: timesteps, label dropout and noise come from t->rng. Gradients are
 * accumulated (scaled by 1/grad_accum); returns the batch's mean squared error. */
float diffusion_batch(void *js, trainer *t, const uint8_t *images, const uint8_t *labels, int n);

unet *diffusion_unet(void *js);
const ddpm_schedule *diffusion_schedule(void *js);
/* The whole train and test splits in inference tools (world 1); this rank's shards in training. */
image_shard *diffusion_train_shard(void *js);
image_shard *diffusion_test_shard(void *js);

typedef struct gen_opts {
    double guidance;     /* w: eps = eps_u + w (eps_c - eps_u); 0 = unguided conditional */
    int steps;           /* DDIM steps (ignored by ddpm, which takes all T) */
    int ddpm;            /* 1: ancestral DDPM, 0: DDIM */
} gen_opts;

/* Draws n images for labels[n] (0..9, or 10 = unconditional) with the trainer's current
 * parameters; the initial noise (and DDPM's) comes from r. Writes n x H x W uint8. */
void diffusion_generate(void *js, trainer *t, const int32_t *labels, int n, const gen_opts *o, rng *r,
                        uint8_t *out);

int diffusion_sample_main(int argc, char **argv);
int diffusion_eval_main(int argc, char **argv);

#endif
