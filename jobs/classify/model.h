/* model.h: the classify job's networks (LeNet-5 and an MLP): layers, activations, forward,
 * loss and backward.
 *
 * The network is a short sequence of layers (conv, relu, pool, linear) over NCHW float
 * activations: forward runs the list top to bottom, backward runs it in reverse, and the ops
 * come from kernels.h. The loss is softmax cross-entropy, mean over the batch. Like the other
 * jobs' models it knows nothing of the trainer, MPI or files.
 *
 * Shapes: B examples (up to cap), an input image of C x H x W, K = CLASSIFY_CLASSES. */
#ifndef DTRAIN_CLASSIFY_MODEL_H
#define DTRAIN_CLASSIFY_MODEL_H

#include <stdint.h>

#include "params.h"
#include "activations.h"
#include "rng.h"

#define CLASSIFY_MAX_LAYERS 16
#define CLASSIFY_CLASSES 10

typedef enum { L_CONV, L_RELU, L_POOL, L_LINEAR } layer_kind;

typedef struct layer {
    layer_kind kind;
    int C, H, W;     /* input shape per example (linear: C = in features, H = W = 1) */
    int OC, OH, OW;  /* output shape per example */
    int K, pad;      /* conv */
    int w, b;        /* tensor indices in the model */
} layer;

typedef struct classifier {
    layer layers[CLASSIFY_MAX_LAYERS];
    int nlayers;
    int H, W, C;     /* input image */
    int cap;         /* examples the activations hold */
    activations mem; /* the arena behind every pointer below */
    /* act[0] [B,C,H,W] the normalised input; act[i+1] [B,OC,OH,OW] output of layer i */
    float *act[CLASSIFY_MAX_LAYERS + 1];
    /* dact[i] the gradient of act[i]; dact[0] NULL (no gradient w.r.t. the images) */
    float *dact[CLASSIFY_MAX_LAYERS + 1];
    float *probs;     /* [B,K] softmax of the logits act[nlayers] */
    float *losses;    /* [B] per-example cross-entropy */
    int32_t *targets; /* [B] labels */
    /* Host staging of the inputs: the activations above are the backend's memory (a GPU's),
     * which host code reaches only through kernels.h's memory calls. */
    float *host_input;     /* [cap,C,H,W] the normalised images, copied into act[0] */
    int32_t *host_targets; /* [cap] */
} classifier;

/* Declares the network's tensors in m (before model_alloc) for C x H x W input images.
 * LeNet-5 wants 28 x 28 x 1. */
void classifier_build_lenet(classifier *n, model *m, int H, int W, int C);
void classifier_build_mlp(classifier *n, model *m, int H, int W, int C, int hidden);
/* Declares and allocates the activations for batches of up to cap examples (once). */
void classifier_alloc(classifier *n, int cap);
void classifier_free(classifier *n);

/* Glorot/Xavier uniform weights and zero biases for every conv and linear layer. */
void classifier_init_params(const classifier *n, model *m, rng *r);

/* Forward over B images (B x H x W x C uint8, NHWC, host memory): normalises them on the
 * host, copies them into act[0] and runs every layer; the logits are act[nlayers] [B,K]. */
void classifier_forward(classifier *n, const model *m, const uint8_t *images, int B);
/* After a forward: the softmax cross-entropy against labels[B] (host); returns the mean loss. */
float classifier_loss(classifier *n, const uint8_t *labels, int B);
/* After classifier_loss: accumulates into m's gradient arena the gradient of
 * scale * (sum of the B losses), reporting each layer's with model_grads_ready. */
void classifier_backward(classifier *n, model *m, int B, float scale);
/* After a forward: the first B examples of act[i] copied to the host buffer out (the
 * logits: i = nlayers, K per example; the features: i = nlayers - 1). */
void classifier_to_host(const classifier *n, int i, int B, float *out);

/* The features: the input of the last layer, act[nlayers - 1] (LeNet: the 84 activations
 * after the last hidden ReLU); their count per example. */
int classifier_feature_width(const classifier *n);

#endif
