/* model.h: the noise-prediction U-Net of the diffusion job.
 *
 * eps = unet(x_t, t, y): a small U-Net over 1-channel images with a timestep and a class
 * label as conditioning. Forward and backward are explicit (no autograd): every activation
 * is declared in one arena (core/activations.h) and those that backward differentiates have
 * their gradient at the same offset of the twin arena, so backward finds the gradient of any
 * activation by pointer arithmetic and the ops' accumulating backwards handle every fan-out
 * (skip connections, the shared embedding) on their own.
 *
 * Shapes: B examples (up to the reserved capacity), HW = H*W pixels of the block's level,
 * E = emb_dim, G = groups. */
#ifndef DTRAIN_UNET_H
#define DTRAIN_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"
#include "activations.h"
#include "rng.h"

#define UNET_MAX_LEVELS 4
#define UNET_MAX_BLOCKS 8   /* residual blocks per level and path */
#define UNET_NCLASSES 10    /* labels 0..9; label UNET_NCLASSES means "no label" */

typedef struct unet_config {
    int H, W;                       /* image size; 1 channel; divisible by 2^(levels-1) */
    int levels;                     /* resolutions H, H/2, ..., attention at the lowest */
    int width[UNET_MAX_LEVELS];     /* channels per level, multiples of groups */
    int blocks;                     /* residual blocks per level on each path */
    int groups;                     /* GroupNorm groups */
    int heads;                      /* attention heads (divide width[levels-1]) */
} unet_config;

/* A residual block at one resolution: C → OC channels.
 *   h1 = conv3x3(silu(gn1(in))) + proj(silu(emb))[per channel]
 *   out = conv3x3(silu(gn2(h1))) + (C == OC ? in : conv1x1(in)) */
typedef struct resblock {
    int C, OC, H, W;
    int gn1_w, gn1_b, conv1_w, conv1_b, proj_w, proj_b;
    int gn2_w, gn2_b, conv2_w, conv2_b, skip_w, skip_b; /* skip_* = -1 when C == OC */
    const float *in;         /* [B,C,HW], set by forward: another activation */
    float *n1, *a1;          /* [B,C,HW] gn1(in), silu(n1) */
    float *h1;               /* [B,OC,HW] conv1(a1) + e, in place */
    float *e;                /* [B,OC] proj(silu(emb)) */
    float *n2, *a2, *h2;     /* [B,OC,HW] gn2(h1), silu(n2), conv2(a2) */
    float *skip;             /* [B,OC,HW] conv1x1(in); NULL when C == OC */
    float *out;              /* [B,OC,HW] h2 + shortcut */
    float *mean1, *rstd1, *mean2, *rstd2; /* [B,G] GroupNorm statistics */
} resblock;

/* Self-attention over the pixels of a [B,C,HW] map, with a residual:
 *   out = in + to_chw(proj(attention(qkv(to_hwc(gn(in)))))) */
typedef struct attnblock {
    int C, HW, heads;
    int gn_w, gn_b, qkv_w, qkv_b, proj_w, proj_b;
    const float *in;         /* [B,C,HW], set by forward */
    float *n;                /* [B,C,HW] gn(in) */
    float *tok;              /* [B,HW,C] n as a sequence of pixel tokens */
    float *qkv;              /* [B,HW,3C] */
    float *att;              /* [B,heads,HW,HW] attention probabilities */
    float *ao;               /* [B,HW,C] attention output */
    float *pr;               /* [B,HW,C] proj(ao) */
    float *back;             /* [B,C,HW] pr as a feature map */
    float *out;              /* [B,C,HW] in + back */
    float *mean, *rstd;      /* [B,G] */
} attnblock;

typedef struct unet {
    unet_config cfg;
    int emb_dim;            /* embedding width: 4 x width[0] */
    /* parameters (tensor indices) outside the blocks */
    int t1_w, t1_b, t2_w, t2_b, label_emb, in_w, in_b, out_gn_w, out_gn_b, out_w, out_b;
    resblock down[UNET_MAX_LEVELS][UNET_MAX_BLOCKS];
    resblock up[UNET_MAX_LEVELS][UNET_MAX_BLOCKS]; /* levels 0 .. levels-2 */
    attnblock attn;
    /* activations for up to cap examples (w_l = width[l]) */
    int cap;
    activations mem;        /* the arena behind every pointer here and in the blocks: the
                             * backend's memory (a GPU's), never dereferenced by the host */
    float *sin_host;        /* [cap,w_0] host staging of the timestep embedding */
    float *x;               /* [B,1,H,W] the input x_t */
    float *sin;             /* [B,w_0] sinusoidal embedding of t */
    float *t1, *t1a, *temb; /* [B,E] fc1(sin), silu(t1), fc2(t1a) */
    float *emb, *semb;      /* [B,E] temb + label_emb[y], silu(emb) */
    float *h0;              /* [B,w_0,H,W] conv_in(x) */
    float *pool[UNET_MAX_LEVELS]; /* [B,w_l,H/2^(l+1),W/2^(l+1)] avgpool of level l's output */
    float *upx[UNET_MAX_LEVELS];  /* [B,w_(l+1),H/2^l,W/2^l] upsampled input of up level l */
    float *cat[UNET_MAX_LEVELS];  /* [B,w_(l+1)+w_l,H/2^l,W/2^l] upx[l] and skip l */
    float *nout, *aout;     /* [B,w_0,H,W] out.gn(h), silu(nout) */
    float *out;             /* [B,1,H,W] the predicted noise */
    float *mean_out, *rstd_out; /* [B,G] */
    int32_t *ybuf;          /* [B] labels of the last forward (the embedding's backward) */
    /* the convolutions' and the attention's shared scratch: mem.scratch */
} unet;

/* Checks the config (0, or -1 with a message in err naming the key). */
int unet_check(const unet_config *c, char *err, size_t errlen);
/* Declares every parameter tensor with model_add (call before model_alloc). */
void unet_build(unet *u, model *m, const unet_config *c);
/* PyTorch-style init: conv/linear U(+-1/sqrt(fan_in)), GroupNorm 1/0, label table N(0,1). */
void unet_init_params(const unet *u, model *m, rng *r);
/* Declares and allocates the activations for batches of up to B (grown, never shrunk);
 * with_grads also allocates the gradient twin that backward needs. A growth frees and
 * allocates again, so it belongs to set-up: the training job's first step, a sampler's start;
 * never between a forward and its backward. */
void unet_reserve(unet *u, int B, int with_grads);
void unet_free(unet *u);

/* eps[B,1,H,W] = unet(x[B,1,H,W], t[B] in [0,T), y[B] in [0,10]); x, t and y are host
 * arrays (copied in); returns u->out, the backend's memory (kernels_to_host to read it). */
const float *unet_forward(unet *u, const model *m, const float *x, const int32_t *t,
                          const int32_t *y, int B);
/* Accumulates parameter gradients into m->grads given dout = dL/d(u->out) [B,1,H,W] in the
 * backend's memory; reports them with model_grads_ready block by block, last to first. */
void unet_backward(unet *u, model *m, const float *dout, int B);

#endif
