/* model.c: the diffusion job's U-Net, forward and backward, read top to bottom.
 *
 *   x [B,1,H,W] ── conv3x3 ──► level 0: blocks × res ──► (skip 0) avgpool
 *                              level 1: blocks × res ──► (skip 1) avgpool
 *                              ...
 *                              level L-1: blocks × res, self-attention
 *                 level L-2: upsample, concat skip L-2, blocks × res
 *                 ...
 *                 level 0:   upsample, concat skip 0, blocks × res ──► GN, SiLU, conv3x3 ──► eps
 *
 * Conditioning: emb = MLP(sinusoid(t)) + label_table[y]; every residual block adds its own
 * linear projection of silu(emb) to each channel of its first convolution's output.
 *
 * Gradients: G(u, p) is the gradient of activation p (same offset in the twin arena, see
 * core/activations.h). The twin is zeroed before backward and every backward op accumulates, so a tensor read by
 * two consumers (a skip feeds avgpool and concat; silu(emb) feeds every block) receives
 * both gradients without bookkeeping. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

#define G(u, p) acts_grad(&(u)->mem, (p))

/* ---- declaring parameters ----------------------------------------------------------- */

static int add1(model *m, const char *prefix, const char *name, int n, int decay) {
    char full[TENSOR_NAME_MAX];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return model_add(m, full, 1, (int[]){n}, decay);
}

static int add_linear_w(model *m, const char *prefix, const char *name, int out, int in) {
    char full[TENSOR_NAME_MAX];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return model_add(m, full, 2, (int[]){out, in}, 1);
}

static int add_conv_w(model *m, const char *prefix, const char *name, int OC, int C, int K) {
    char full[TENSOR_NAME_MAX];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return model_add(m, full, 4, (int[]){OC, C, K, K}, 1);
}

static void res_declare(model *m, resblock *r, const char *p, int C, int OC, int H, int W, int E) {
    memset(r, 0, sizeof *r);
    r->C = C, r->OC = OC, r->H = H, r->W = W;
    r->gn1_w = add1(m, p, "gn1.weight", C, 0);
    r->gn1_b = add1(m, p, "gn1.bias", C, 0);
    r->conv1_w = add_conv_w(m, p, "conv1.weight", OC, C, 3);
    r->conv1_b = add1(m, p, "conv1.bias", OC, 0);
    r->proj_w = add_linear_w(m, p, "emb_proj.weight", OC, E);
    r->proj_b = add1(m, p, "emb_proj.bias", OC, 0);
    r->gn2_w = add1(m, p, "gn2.weight", OC, 0);
    r->gn2_b = add1(m, p, "gn2.bias", OC, 0);
    r->conv2_w = add_conv_w(m, p, "conv2.weight", OC, OC, 3);
    r->conv2_b = add1(m, p, "conv2.bias", OC, 0);
    r->skip_w = r->skip_b = -1;
    if (C != OC) {
        r->skip_w = add_conv_w(m, p, "skip.weight", OC, C, 1);
        r->skip_b = add1(m, p, "skip.bias", OC, 0);
    }
}

static void attn_declare(model *m, attnblock *a, const char *p, int C, int HW, int heads) {
    memset(a, 0, sizeof *a);
    a->C = C, a->HW = HW, a->heads = heads;
    a->gn_w = add1(m, p, "gn.weight", C, 0);
    a->gn_b = add1(m, p, "gn.bias", C, 0);
    a->qkv_w = add_linear_w(m, p, "qkv.weight", 3 * C, C);
    a->qkv_b = add1(m, p, "qkv.bias", 3 * C, 0);
    a->proj_w = add_linear_w(m, p, "proj.weight", C, C);
    a->proj_b = add1(m, p, "proj.bias", C, 0);
}

int unet_check(const unet_config *c, char *err, size_t errlen) {
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS)
        return snprintf(err, errlen, "bad value '%d' for key 'channel_mult': 1 to %d levels", c->levels,
                        UNET_MAX_LEVELS), -1;
    if (c->blocks < 1 || c->blocks > UNET_MAX_BLOCKS)
        return snprintf(err, errlen, "bad value '%d' for key 'blocks': expected 1..%d", c->blocks,
                        UNET_MAX_BLOCKS), -1;
    int div = 1 << (c->levels - 1);
    if (c->H % div || c->W % div)
        return snprintf(err, errlen, "%dx%d images cannot be halved %d times (key 'channel_mult')", c->H,
                        c->W, c->levels - 1), -1;
    for (int l = 0; l < c->levels; l++)
        if (c->width[l] < 1 || c->width[l] % c->groups)
            return snprintf(err, errlen, "level %d has %d channels, not a multiple of groups = %d (keys "
                            "'channels', 'channel_mult', 'groups')", l, c->width[l], c->groups), -1;
    if (c->width[c->levels - 1] % c->heads)
        return snprintf(err, errlen, "bad value '%d' for key 'heads': must divide the lowest level's %d "
                        "channels", c->heads, c->width[c->levels - 1]), -1;
    if (c->width[0] % 2)
        return snprintf(err, errlen, "key 'channels' must be even (sinusoidal embedding)"), -1;
    return 0;
}

void unet_build(unet *u, model *m, const unet_config *c) {
    memset(u, 0, sizeof *u);
    u->cfg = *c;
    int E = u->emb_dim = 4 * c->width[0], L = c->levels;
    u->t1_w = add_linear_w(m, "time.fc1", "weight", E, c->width[0]);
    u->t1_b = add1(m, "time.fc1", "bias", E, 0);
    u->t2_w = add_linear_w(m, "time.fc2", "weight", E, E);
    u->t2_b = add1(m, "time.fc2", "bias", E, 0);
    u->label_emb = model_add(m, "label_emb.weight", 2, (int[]){UNET_NCLASSES + 1, E}, 0);
    u->in_w = add_conv_w(m, "conv_in", "weight", c->width[0], 1, 3);
    u->in_b = add1(m, "conv_in", "bias", c->width[0], 0);
    char p[48];
    int C = c->width[0];
    for (int l = 0; l < L; l++) {
        int H = c->H >> l, W = c->W >> l;
        for (int b = 0; b < c->blocks; b++) {
            snprintf(p, sizeof p, "down%d.%d", l, b);
            res_declare(m, &u->down[l][b], p, C, c->width[l], H, W, E);
            C = c->width[l];
        }
    }
    attn_declare(m, &u->attn, "mid.attn", C, (c->H >> (L - 1)) * (c->W >> (L - 1)), c->heads);
    for (int l = L - 2; l >= 0; l--) {
        int H = c->H >> l, W = c->W >> l;
        C += c->width[l]; /* the upsampled map concatenated with skip l */
        for (int b = 0; b < c->blocks; b++) {
            snprintf(p, sizeof p, "up%d.%d", l, b);
            res_declare(m, &u->up[l][b], p, C, c->width[l], H, W, E);
            C = c->width[l];
        }
    }
    u->out_gn_w = add1(m, "out.gn", "weight", C, 0);
    u->out_gn_b = add1(m, "out.gn", "bias", C, 0);
    u->out_w = add_conv_w(m, "out.conv", "weight", 1, C, 3);
    u->out_b = add1(m, "out.conv", "bias", 1, 0);
}

/* ---- initialisation ----------------------------------------------------------------- */

static void fill_uniform(float *p, size_t n, float bound, rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * rng_uniform(r) - 1.0f) * bound;
}

void unet_init_params(const unet *u, model *m, rng *r) {
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_info *ti = &m->tensors[i];
        float *p = model_param(m, i);
        const char *name = ti->name;
        size_t len = strlen(name);
        if (i == u->label_emb) {
            for (size_t k = 0; k < ti->numel; k++) p[k] = rng_normal(r);
        } else if (strstr(name, "gn") && len > 7 && strcmp(name + len - 7, ".weight") == 0) {
            for (size_t k = 0; k < ti->numel; k++) p[k] = 1.0f;
        } else if (strstr(name, "gn")) {
            memset(p, 0, ti->numel * sizeof *p);
        } else if (ti->ndim >= 2) {
            /* fan_in = everything but the output dimension; the bias that follows shares it */
            int fan_in = (int)(ti->numel / (size_t)ti->shape[0]);
            float bound = 1.0f / sqrtf((float)fan_in);
            fill_uniform(p, ti->numel, bound, r);
            if (i + 1 < m->ntensors && m->tensors[i + 1].ndim == 1)
                fill_uniform(model_param(m, i + 1), m->tensors[i + 1].numel, bound, r);
        }
    }
}

/* ---- activations -------------------------------------------------------------------- */

/* "<prefix>.<what>" of shape dims[0..ndim) */
static void act(unet *u, float **view, const char *prefix, const char *what, int grad, int ndim,
                const int *dims) {
    char name[ACT_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    acts_add(&u->mem, view, name, ndim, dims, grad);
}

/* a [B,C,H,W] feature map with a gradient */
static void map(unet *u, float **view, const char *prefix, const char *what, int B, int C, int H, int W) {
    act(u, view, prefix, what, 1, 4, (int[]){B, C, H, W});
}

static void res_acts(unet *u, resblock *r, const char *p, int B) {
    int G = u->cfg.groups;
    map(u, &r->n1, p, "n1", B, r->C, r->H, r->W);
    map(u, &r->a1, p, "a1", B, r->C, r->H, r->W);
    map(u, &r->h1, p, "h1", B, r->OC, r->H, r->W);
    act(u, &r->e, p, "e", 1, 2, (int[]){B, r->OC});
    map(u, &r->n2, p, "n2", B, r->OC, r->H, r->W);
    map(u, &r->a2, p, "a2", B, r->OC, r->H, r->W);
    map(u, &r->h2, p, "h2", B, r->OC, r->H, r->W);
    map(u, &r->out, p, "out", B, r->OC, r->H, r->W);
    r->skip = NULL;
    if (r->C != r->OC) map(u, &r->skip, p, "skip", B, r->OC, r->H, r->W);
    act(u, &r->mean1, p, "mean1", 0, 2, (int[]){B, G});
    act(u, &r->rstd1, p, "rstd1", 0, 2, (int[]){B, G});
    act(u, &r->mean2, p, "mean2", 0, 2, (int[]){B, G});
    act(u, &r->rstd2, p, "rstd2", 0, 2, (int[]){B, G});
    /* the block's convolutions share the network's scratch */
    acts_scratch(&u->mem, conv2d_scratch_floats(B, r->C, r->H, r->W, r->OC, 3, 1));
    acts_scratch(&u->mem, conv2d_scratch_floats(B, r->OC, r->H, r->W, r->OC, 3, 1));
    if (r->skip) acts_scratch(&u->mem, conv2d_scratch_floats(B, r->C, r->H, r->W, r->OC, 1, 0));
}

static void attn_acts(unet *u, attnblock *a, int B) {
    const char *p = "mid.attn";
    int C = a->C, T = a->HW, G = u->cfg.groups;
    act(u, &a->n, p, "n", 1, 3, (int[]){B, C, T});
    act(u, &a->tok, p, "tok", 1, 3, (int[]){B, T, C});
    act(u, &a->qkv, p, "qkv", 1, 3, (int[]){B, T, 3 * C});
    act(u, &a->att, p, "att", 0, 4, (int[]){B, a->heads, T, T});
    act(u, &a->ao, p, "ao", 1, 3, (int[]){B, T, C});
    act(u, &a->pr, p, "pr", 1, 3, (int[]){B, T, C});
    act(u, &a->back, p, "back", 1, 3, (int[]){B, C, T});
    act(u, &a->out, p, "out", 1, 3, (int[]){B, C, T});
    act(u, &a->mean, p, "mean", 0, 2, (int[]){B, G});
    act(u, &a->rstd, p, "rstd", 0, 2, (int[]){B, G});
    acts_scratch(&u->mem, attention_scratch_floats(B, T, C, a->heads));
}

/* Declares every activation for batches of up to B, in the order forward computes them. */
static void declare_acts(unet *u, int B) {
    const unet_config *k = &u->cfg;
    int E = u->emb_dim, L = k->levels, G = k->groups, H = k->H, W = k->W, w0 = k->width[0];
    char p[48];
    act(u, &u->x, "in", "x", 0, 4, (int[]){B, 1, H, W});
    act(u, &u->sin, "time", "sin", 0, 2, (int[]){B, w0});
    act(u, &u->t1, "time", "fc1", 1, 2, (int[]){B, E});
    act(u, &u->t1a, "time", "silu", 1, 2, (int[]){B, E});
    act(u, &u->temb, "time", "fc2", 0, 2, (int[]){B, E}); /* emb's gradient serves it */
    act(u, &u->emb, "emb", "sum", 1, 2, (int[]){B, E});
    act(u, &u->semb, "emb", "silu", 1, 2, (int[]){B, E});
    acts_add_i32(&u->mem, &u->ybuf, "emb.labels", 1, (int[]){B});
    map(u, &u->h0, "conv_in", "out", B, w0, H, W);
    acts_scratch(&u->mem, conv2d_scratch_floats(B, 1, H, W, w0, 3, 1));
    for (int l = 0; l < L; l++) {
        for (int b = 0; b < k->blocks; b++) {
            snprintf(p, sizeof p, "down%d.%d", l, b);
            res_acts(u, &u->down[l][b], p, B);
        }
        snprintf(p, sizeof p, "down%d", l);
        if (l < L - 1) map(u, &u->pool[l], p, "pool", B, k->width[l], H >> (l + 1), W >> (l + 1));
    }
    attn_acts(u, &u->attn, B);
    for (int l = L - 2; l >= 0; l--) {
        snprintf(p, sizeof p, "up%d", l);
        map(u, &u->upx[l], p, "upsample", B, k->width[l + 1], H >> l, W >> l);
        map(u, &u->cat[l], p, "concat", B, k->width[l + 1] + k->width[l], H >> l, W >> l);
        for (int b = 0; b < k->blocks; b++) {
            snprintf(p, sizeof p, "up%d.%d", l, b);
            res_acts(u, &u->up[l][b], p, B);
        }
    }
    map(u, &u->nout, "out", "gn", B, w0, H, W);
    map(u, &u->aout, "out", "silu", B, w0, H, W);
    act(u, &u->out, "out", "conv", 0, 4, (int[]){B, 1, H, W}); /* its gradient is the caller's */
    act(u, &u->mean_out, "out", "gn_mean", 0, 2, (int[]){B, G});
    act(u, &u->rstd_out, "out", "gn_rstd", 0, 2, (int[]){B, G});
    acts_scratch(&u->mem, conv2d_scratch_floats(B, w0, H, W, 1, 3, 1));
}

void unet_reserve(unet *u, int B, int with_grads) {
    if (B <= u->cap && (!with_grads || u->mem.grads)) return;
    if (B < u->cap) B = u->cap;
    acts_free(&u->mem);
    declare_acts(u, B);
    acts_alloc(&u->mem, with_grads);
    free(u->sin_host);
    u->sin_host = xmalloc((size_t)B * u->cfg.width[0] * sizeof *u->sin_host);
    u->cap = B;
}

void unet_free(unet *u) {
    acts_free(&u->mem);
    free(u->sin_host);
    u->sin_host = NULL;
    u->cap = 0;
}

/* ---- conditioning: timestep and label embedding ------------------------------------- */

/* sin[B,D]: [sin(t f_k), cos(t f_k)] with f_k = 10000^(-k/(D/2)), k < D/2 (Ho et al.);
 * computed on the host (in double, from the host's timesteps) into a host buffer */
static void sinusoid(float *out, const int32_t *t, int B, int D) {
    int half = D / 2;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < half; k++) {
            double f = exp(-log(10000.0) * k / half);
            out[(size_t)b * D + k] = (float)sin(t[b] * f);
            out[(size_t)b * D + half + k] = (float)cos(t[b] * f);
        }
}

/* semb[B,E] = silu(fc2(silu(fc1(sinusoid(t)))) + label_emb[y]). The label lookup is GPT's
 * embedding op read sideways: B "positions" of one sequence whose token ids are the labels,
 * the table as the token embedding and temb as the position embedding, emb[b] =
 * label_emb[y[b]] + temb[b]; its backward is the scatter into the table's gradient, in
 * example order. */
static void embed_forward(unet *u, const model *m, const int32_t *t, int B) {
    int E = u->emb_dim, D = u->cfg.width[0];
    sinusoid(u->sin_host, t, B, D);
    kernels_to_device(u->sin, u->sin_host, (size_t)B * D * sizeof *u->sin);
    linear_forward(u->t1, u->sin, model_param(m, u->t1_w), model_param(m, u->t1_b), B, D, E);
    silu_forward(u->t1a, u->t1, (size_t)B * E);
    linear_forward(u->temb, u->t1a, model_param(m, u->t2_w), model_param(m, u->t2_b), B, E, E);
    embedding_forward(u->emb, u->ybuf, model_param(m, u->label_emb), u->temb, 1, B, E);
    silu_forward(u->semb, u->emb, (size_t)B * E);
}

static void embed_backward(unet *u, model *m, int B) {
    int E = u->emb_dim, D = u->cfg.width[0];
    silu_backward(G(u, u->emb), G(u, u->semb), u->emb, (size_t)B * E);
    const float *demb = G(u, u->emb);
    embedding_backward(model_grad(m, u->label_emb), NULL, demb, u->ybuf, 1, B, E);
    model_grads_ready(m, u->label_emb);
    /* temb enters emb unchanged: its gradient is demb */
    linear_backward(G(u, u->t1a), model_grad(m, u->t2_w), model_grad(m, u->t2_b), demb, u->t1a,
                    model_param(m, u->t2_w), B, E, E);
    model_grads_ready(m, u->t2_w);
    silu_backward(G(u, u->t1), G(u, u->t1a), u->t1, (size_t)B * E);
    linear_backward(NULL, model_grad(m, u->t1_w), model_grad(m, u->t1_b), G(u, u->t1), u->sin,
                    model_param(m, u->t1_w), B, D, E);
    model_grads_ready(m, u->t1_w); /* the first tensor: the whole arena */
}

/* ---- residual block ------------------------------------------------------------------ */

static void res_forward(unet *u, const model *m, resblock *r, const float *in, int B) {
    int HW = r->H * r->W, Gn = u->cfg.groups;
    size_t nin = (size_t)B * r->C * HW, nout = (size_t)B * r->OC * HW;
    r->in = in;
    groupnorm_forward(r->n1, r->mean1, r->rstd1, in, model_param(m, r->gn1_w), model_param(m, r->gn1_b),
                      B, r->C, HW, Gn);
    silu_forward(r->a1, r->n1, nin);
    conv2d_forward(r->h1, r->a1, model_param(m, r->conv1_w), model_param(m, r->conv1_b), u->mem.scratch, B,
                   r->C, r->H, r->W, r->OC, 3, 1);
    linear_forward(r->e, u->semb, model_param(m, r->proj_w), model_param(m, r->proj_b), B, u->emb_dim,
                   r->OC);
    add_channel_forward(r->h1, r->h1, r->e, B, r->OC, HW);
    groupnorm_forward(r->n2, r->mean2, r->rstd2, r->h1, model_param(m, r->gn2_w),
                      model_param(m, r->gn2_b), B, r->OC, HW, Gn);
    silu_forward(r->a2, r->n2, nout);
    conv2d_forward(r->h2, r->a2, model_param(m, r->conv2_w), model_param(m, r->conv2_b), u->mem.scratch, B,
                   r->OC, r->H, r->W, r->OC, 3, 1);
    const float *shortcut = in;
    if (r->skip) {
        conv2d_forward(r->skip, in, model_param(m, r->skip_w), model_param(m, r->skip_b), u->mem.scratch, B,
                       r->C, r->H, r->W, r->OC, 1, 0);
        shortcut = r->skip;
    }
    residual_forward(r->out, r->h2, shortcut, nout);
}

/* Reads G(out), accumulates into G(in) and the block's parameter gradients. */
static void res_backward(unet *u, model *m, resblock *r, int B) {
    int HW = r->H * r->W, Gn = u->cfg.groups;
    size_t nin = (size_t)B * r->C * HW, nout = (size_t)B * r->OC * HW;
    float *din = G(u, r->in);
    residual_backward(G(u, r->h2), r->skip ? G(u, r->skip) : din, G(u, r->out), nout);
    if (r->skip)
        conv2d_backward(din, model_grad(m, r->skip_w), model_grad(m, r->skip_b), G(u, r->skip), r->in,
                        model_param(m, r->skip_w), u->mem.scratch, B, r->C, r->H, r->W, r->OC, 1, 0);
    conv2d_backward(G(u, r->a2), model_grad(m, r->conv2_w), model_grad(m, r->conv2_b), G(u, r->h2), r->a2,
                    model_param(m, r->conv2_w), u->mem.scratch, B, r->OC, r->H, r->W, r->OC, 3, 1);
    silu_backward(G(u, r->n2), G(u, r->a2), r->n2, nout);
    groupnorm_backward(G(u, r->h1), model_grad(m, r->gn2_w), model_grad(m, r->gn2_b), G(u, r->n2), r->h1,
                       model_param(m, r->gn2_w), r->mean2, r->rstd2, B, r->OC, HW, Gn);
    /* h1 = conv1(a1) + e in place: the conv's output gradient is G(h1) itself */
    add_channel_backward(NULL, G(u, r->e), G(u, r->h1), B, r->OC, HW);
    linear_backward(G(u, u->semb), model_grad(m, r->proj_w), model_grad(m, r->proj_b), G(u, r->e), u->semb,
                    model_param(m, r->proj_w), B, u->emb_dim, r->OC);
    conv2d_backward(G(u, r->a1), model_grad(m, r->conv1_w), model_grad(m, r->conv1_b), G(u, r->h1), r->a1,
                    model_param(m, r->conv1_w), u->mem.scratch, B, r->C, r->H, r->W, r->OC, 3, 1);
    silu_backward(G(u, r->n1), G(u, r->a1), r->n1, nin);
    groupnorm_backward(din, model_grad(m, r->gn1_w), model_grad(m, r->gn1_b), G(u, r->n1), r->in,
                       model_param(m, r->gn1_w), r->mean1, r->rstd1, B, r->C, HW, Gn);
}

/* ---- self-attention over pixels ------------------------------------------------------ */

static void attn_forward(unet *u, const model *m, attnblock *a, const float *in, int B) {
    int C = a->C, T = a->HW;
    size_t n = (size_t)B * C * T;
    a->in = in;
    groupnorm_forward(a->n, a->mean, a->rstd, in, model_param(m, a->gn_w), model_param(m, a->gn_b), B, C,
                      T, u->cfg.groups);
    transpose_chw_forward(a->tok, a->n, B, C, T); /* [B,C,T] → [B,T,C]: pixels as tokens */
    linear_forward(a->qkv, a->tok, model_param(m, a->qkv_w), model_param(m, a->qkv_b), B * T, C, 3 * C);
    attention_full_forward(a->ao, a->att, a->qkv, B, T, C, a->heads);
    linear_forward(a->pr, a->ao, model_param(m, a->proj_w), model_param(m, a->proj_b), B * T, C, C);
    transpose_chw_forward(a->back, a->pr, B, T, C); /* [B,T,C] → [B,C,T] */
    residual_forward(a->out, in, a->back, n);
}

static void attn_backward(unet *u, model *m, attnblock *a, int B) {
    int C = a->C, T = a->HW;
    size_t n = (size_t)B * C * T;
    float *din = G(u, a->in);
    residual_backward(din, G(u, a->back), G(u, a->out), n);
    transpose_chw_backward(G(u, a->pr), G(u, a->back), B, T, C);
    linear_backward(G(u, a->ao), model_grad(m, a->proj_w), model_grad(m, a->proj_b), G(u, a->pr), a->ao,
                    model_param(m, a->proj_w), B * T, C, C);
    attention_full_backward(G(u, a->qkv), G(u, a->ao), a->qkv, a->att, u->mem.scratch, B, T, C, a->heads);
    linear_backward(G(u, a->tok), model_grad(m, a->qkv_w), model_grad(m, a->qkv_b), G(u, a->qkv), a->tok,
                    model_param(m, a->qkv_w), B * T, C, 3 * C);
    transpose_chw_backward(G(u, a->n), G(u, a->tok), B, C, T);
    groupnorm_backward(din, model_grad(m, a->gn_w), model_grad(m, a->gn_b), G(u, a->n), a->in,
                       model_param(m, a->gn_w), a->mean, a->rstd, B, C, T, u->cfg.groups);
}

/* ---- the whole network --------------------------------------------------------------- */

const float *unet_forward(unet *u, const model *m, const float *x, const int32_t *t,
                          const int32_t *y, int B) {
    const unet_config *k = &u->cfg;
    int L = k->levels, HW = k->H * k->W;
    if (B > u->cap) DIE("unet: batch of %d exceeds the reserved %d", B, u->cap);
    kernels_to_device(u->x, x, (size_t)B * HW * sizeof *x);
    kernels_to_device(u->ybuf, y, (size_t)B * sizeof *y);
    embed_forward(u, m, t, B);
    /* x [B,1,H,W] → h [B,w0,H,W] */
    conv2d_forward(u->h0, u->x, model_param(m, u->in_w), model_param(m, u->in_b), u->mem.scratch, B, 1, k->H,
                   k->W, k->width[0], 3, 1);
    const float *h = u->h0;
    for (int l = 0; l < L; l++) {
        for (int b = 0; b < k->blocks; b++) {
            res_forward(u, m, &u->down[l][b], h, B);
            h = u->down[l][b].out;
        }
        if (l < L - 1) { /* the skip to the up path is down[l][last].out */
            avgpool2x2_forward(u->pool[l], h, B * k->width[l], k->H >> l, k->W >> l);
            h = u->pool[l];
        }
    }
    attn_forward(u, m, &u->attn, h, B);
    h = u->attn.out;
    for (int l = L - 2; l >= 0; l--) {
        int Hl = k->H >> l, Wl = k->W >> l;
        /* [B,w(l+1),H/2,W/2] → [B,w(l+1),H,W], then [B, w(l+1) + w(l), H, W] */
        upsample2x_forward(u->upx[l], h, B * k->width[l + 1], Hl / 2, Wl / 2);
        concat_channels_forward(u->cat[l], u->upx[l], u->down[l][k->blocks - 1].out, B, k->width[l + 1],
                                k->width[l], Hl * Wl);
        h = u->cat[l];
        for (int b = 0; b < k->blocks; b++) {
            res_forward(u, m, &u->up[l][b], h, B);
            h = u->up[l][b].out;
        }
    }
    /* h [B,w0,H,W] → eps [B,1,H,W] */
    groupnorm_forward(u->nout, u->mean_out, u->rstd_out, h, model_param(m, u->out_gn_w),
                      model_param(m, u->out_gn_b), B, k->width[0], HW, k->groups);
    silu_forward(u->aout, u->nout, (size_t)B * k->width[0] * HW);
    conv2d_forward(u->out, u->aout, model_param(m, u->out_w), model_param(m, u->out_b), u->mem.scratch, B,
                   k->width[0], k->H, k->W, 1, 3, 1);
    return u->out;
}

/* The input of the output head: the last up block's output, or the bottom's with 1 level. */
static const float *head_input(const unet *u) {
    const unet_config *k = &u->cfg;
    return k->levels > 1 ? u->up[0][k->blocks - 1].out : u->attn.out;
}

void unet_backward(unet *u, model *m, const float *dout, int B) {
    const unet_config *k = &u->cfg;
    int L = k->levels, HW = k->H * k->W;
    if (!u->mem.grads) DIE("unet_backward: reserved without gradients");
    acts_zero_grads(&u->mem);
    const float *h = head_input(u);
    conv2d_backward(G(u, u->aout), model_grad(m, u->out_w), model_grad(m, u->out_b), dout, u->aout,
                    model_param(m, u->out_w), u->mem.scratch, B, k->width[0], k->H, k->W, 1, 3, 1);
    silu_backward(G(u, u->nout), G(u, u->aout), u->nout, (size_t)B * k->width[0] * HW);
    groupnorm_backward(G(u, h), model_grad(m, u->out_gn_w), model_grad(m, u->out_gn_b), G(u, u->nout), h,
                       model_param(m, u->out_gn_w), u->mean_out, u->rstd_out, B, k->width[0], HW, k->groups);
    model_grads_ready(m, u->out_gn_w);
    /* the blocks are declared in the order forward runs them (down, mid, up from the lowest
     * level): backward finishes them in reverse, each block's tensors at once */
    for (int l = 0; l <= L - 2; l++) {
        int Hl = k->H >> l, Wl = k->W >> l;
        for (int b = k->blocks - 1; b >= 0; b--) {
            res_backward(u, m, &u->up[l][b], B);
            model_grads_ready(m, u->up[l][b].gn1_w);
        }
        concat_channels_backward(G(u, u->upx[l]), G(u, u->down[l][k->blocks - 1].out), G(u, u->cat[l]), B,
                                 k->width[l + 1], k->width[l], Hl * Wl);
        const float *below = l + 1 == L - 1 ? u->attn.out : u->up[l + 1][k->blocks - 1].out;
        upsample2x_backward(G(u, below), G(u, u->upx[l]), B * k->width[l + 1], Hl / 2, Wl / 2);
    }
    attn_backward(u, m, &u->attn, B);
    model_grads_ready(m, u->attn.gn_w);
    for (int l = L - 1; l >= 0; l--) {
        if (l < L - 1)
            avgpool2x2_backward(G(u, u->down[l][k->blocks - 1].out), G(u, u->pool[l]), B * k->width[l],
                                k->H >> l, k->W >> l);
        for (int b = k->blocks - 1; b >= 0; b--) {
            res_backward(u, m, &u->down[l][b], B);
            model_grads_ready(m, u->down[l][b].gn1_w);
        }
    }
    conv2d_backward(NULL, model_grad(m, u->in_w), model_grad(m, u->in_b), G(u, u->h0), u->x,
                    model_param(m, u->in_w), u->mem.scratch, B, 1, k->H, k->W, k->width[0], 3, 1);
    model_grads_ready(m, u->in_w);
    embed_backward(u, m, B); /* last: every block has added its share to G(semb) */
}
