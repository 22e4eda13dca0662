/* classify.h: the labelled-image classification job (MNIST LeNet-5 and MLP). */
#ifndef DTRAIN_CLASSIFY_H
#define DTRAIN_CLASSIFY_H

#include <stdint.h>

#include "job.h"
#include "trainer.h"

extern const job classify_job;

/* Forward and backward on an explicit batch of n images (n x H x W x C uint8) and labels;
 * gradients are accumulated into the trainer's grad arena; returns the batch's mean loss.
 * This is what forward_backward runs on each loaded batch; the data-parallel equivalence
 * test calls it directly so that both sides see exactly the same examples. */
float classify_batch(void *js, trainer *t, const uint8_t *images, const uint8_t *labels, int n);

/* The training augmentation (augment_shift): moves each of the n images (n x H x W x C uint8,
 * in place) by a shift drawn from (seed, epoch, the example's index in the training set)
 * alone, so an example gets the same shift whatever the number of ranks, its place in the
 * batch or a resume. No-op when augment_shift is 0. forward_backward applies it to each
 * loaded batch; the equivalence test calls it too. */
void classify_augment(void *js, uint8_t *images, const long *global_idx, int n, long epoch);

/* Forward only: writes n x classes logits of the model for the given images (host buffers
 * both; the logits are copied out of the backend's memory). */
void classify_logits(void *js, trainer *t, const uint8_t *images, int n, float *logits);

/* Forward only: the input of the last layer for n images (for LeNet, the 84 activations
 * after the last hidden ReLU: the features of the diffusion job's Fréchet distance), as
 * n x width floats in a host buffer; returns width. With feat NULL, only returns width. */
int classify_features(void *js, trainer *t, const uint8_t *images, int n, float *feat);

#endif
