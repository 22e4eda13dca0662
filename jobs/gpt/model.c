/* model.c: the GPT-2 architecture on the flat arenas, forward and backward by hand.
 *
 *   x = wte[tokens] + wpe[0:T]                                  [N,C]
 *   per block:  x = x + attn_proj(attention(qkv(ln_1(x))))     pre-LayerNorm
 *               x = x + mlp_proj(gelu(fc(ln_2(x))))            fc: C -> 4C -> C
 *   logits = ln_f(x) . wte[0:V]^T                              [N,V], head tied to wte
 *   loss = mean cross-entropy of softmax(logits) against the next tokens
 *
 * The head multiplies by the first V rows of wte only, and the softmax runs over those V
 * logits, as llm.c's does. The padded rows V .. Vp-1 are there for the layout: a vocabulary
 * dimension that is a multiple of 64 keeps GEMM tiles whole on a GPU, and checkpoints have
 * the same shapes on every backend. No token id reaches them; on the CPU their logits would
 * only cost time and mass that the softmax must learn to suppress.
 *
 * Every op comes from kernels.h, whose backwards ACCUMULATE. That suits the two places where
 * a tensor has two consumers: the residual stream (one buffer, dres, collects the skip path
 * and the branch) and wte (the embedding's scatter and the head's GEMM add into one
 * gradient). Every other gradient buffer is zeroed right before the op that accumulates
 * into it, because the blocks reuse them. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "util.h"

#define INIT_STD 0.02f

int gpt_pad_vocab(int v, int multiple) {
    if (multiple <= 1) return v;
    return (v + multiple - 1) / multiple * multiple;
}

size_t gpt_num_params(const gpt_config *c, int with_padding) {
    size_t C = (size_t)c->n_embd, b = c->bias ? 1 : 0;
    size_t ln = C + b * C;                          /* weight (+ bias) */
    size_t block = 2 * ln                           /* ln_1, ln_2 */
                   + 3 * C * C + b * 3 * C          /* qkv */
                   + C * C + b * C                  /* attn_proj */
                   + 4 * C * C + b * 4 * C          /* fc */
                   + 4 * C * C + b * C;             /* mlp_proj */
    size_t rows = (size_t)(with_padding ? c->padded_vocab : c->vocab_size);
    return rows * C + (size_t)c->block_size * C + (size_t)c->n_layer * block + ln;
}

/* ---- building ----------------------------------------------------------------------- */

static int add_vector(model *m, const char *name, int n) {
    return model_add(m, name, 1, (int[]){n}, 0);
}

static int add_matrix(model *m, const char *name, int rows, int cols) {
    return model_add(m, name, 2, (int[]){rows, cols}, 1);
}

/* "h.<l>.<what>": nanoGPT's state_dict names without the "transformer." prefix */
static int add_block_tensor(model *m, int l, const char *what, int rows, int cols) {
    char name[TENSOR_NAME_MAX];
    snprintf(name, sizeof name, "h.%d.%s", l, what);
    return cols ? add_matrix(m, name, rows, cols) : add_vector(m, name, rows);
}

static void build_block(gpt_block *k, model *m, int l, int C, int bias) {
    k->ln1_w = add_block_tensor(m, l, "ln_1.weight", C, 0);
    k->ln1_b = bias ? add_block_tensor(m, l, "ln_1.bias", C, 0) : -1;
    k->qkv_w = add_block_tensor(m, l, "attn.c_attn.weight", 3 * C, C);
    k->qkv_b = bias ? add_block_tensor(m, l, "attn.c_attn.bias", 3 * C, 0) : -1;
    k->attn_proj_w = add_block_tensor(m, l, "attn.c_proj.weight", C, C);
    k->attn_proj_b = bias ? add_block_tensor(m, l, "attn.c_proj.bias", C, 0) : -1;
    k->ln2_w = add_block_tensor(m, l, "ln_2.weight", C, 0);
    k->ln2_b = bias ? add_block_tensor(m, l, "ln_2.bias", C, 0) : -1;
    k->fc_w = add_block_tensor(m, l, "mlp.c_fc.weight", 4 * C, C);
    k->fc_b = bias ? add_block_tensor(m, l, "mlp.c_fc.bias", 4 * C, 0) : -1;
    k->mlp_proj_w = add_block_tensor(m, l, "mlp.c_proj.weight", C, 4 * C);
    k->mlp_proj_b = bias ? add_block_tensor(m, l, "mlp.c_proj.bias", C, 0) : -1;
}

void gpt_build(gpt *g, model *m, const gpt_config *c) {
    if (c->n_head <= 0 || c->n_embd % c->n_head != 0)
        DIE("gpt: n_embd %d is not a multiple of n_head %d", c->n_embd, c->n_head);
    if (c->vocab_size <= 0 || c->padded_vocab < c->vocab_size)
        DIE("gpt: padded vocabulary %d smaller than the vocabulary %d", c->padded_vocab,
            c->vocab_size);
    memset(g, 0, sizeof *g);
    g->cfg = *c;
    int C = c->n_embd;
    g->wte = add_matrix(m, "wte", c->padded_vocab, C);
    g->wpe = add_matrix(m, "wpe", c->block_size, C);
    g->blocks = xcalloc((size_t)c->n_layer, sizeof *g->blocks);
    for (int l = 0; l < c->n_layer; l++) build_block(&g->blocks[l], m, l, C, c->bias);
    g->lnf_w = add_vector(m, "ln_f.weight", C);
    g->lnf_b = c->bias ? add_vector(m, "ln_f.bias", C) : -1;
    /* core/params.h counts "real parameters, padding excluded": the padded rows are padding */
    m->nparams -= (size_t)(c->padded_vocab - c->vocab_size) * C;
}

/* ---- initialisation ----------------------------------------------------------------- */

static void fill_normal(float *p, size_t n, float std, rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = std * rng_normal(r);
}

static void fill_value(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

static void init_tensor(model *m, int i, float std, rng *r) {
    if (i >= 0) fill_normal(model_param(m, i), m->tensors[i].numel, std, r);
}

static void init_zero(model *m, int i) {
    if (i >= 0) fill_value(model_param(m, i), m->tensors[i].numel, 0.0f);
}

static void init_ones(model *m, int i) { fill_value(model_param(m, i), m->tensors[i].numel, 1.0f); }

void gpt_init_params(const gpt *g, model *m, rng *r) {
    const gpt_config *c = &g->cfg;
    size_t C = (size_t)c->n_embd;
    /* GPT-2 scales the projections that write into the residual stream by 1/sqrt(2L)
     * (2 per block) so the stream's variance does not grow with depth */
    float proj_std = INIT_STD / sqrtf(2.0f * (float)c->n_layer);
    float *wte = model_param(m, g->wte);
    fill_normal(wte, (size_t)c->vocab_size * C, INIT_STD, r);
    fill_value(wte + (size_t)c->vocab_size * C, (size_t)(c->padded_vocab - c->vocab_size) * C,
               0.0f);
    init_tensor(m, g->wpe, INIT_STD, r);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt_block *k = &g->blocks[l];
        init_ones(m, k->ln1_w);
        init_zero(m, k->ln1_b);
        init_tensor(m, k->qkv_w, INIT_STD, r);
        init_zero(m, k->qkv_b);
        init_tensor(m, k->attn_proj_w, proj_std, r);
        init_zero(m, k->attn_proj_b);
        init_ones(m, k->ln2_w);
        init_zero(m, k->ln2_b);
        init_tensor(m, k->fc_w, INIT_STD, r);
        init_zero(m, k->fc_b);
        init_tensor(m, k->mlp_proj_w, proj_std, r);
        init_zero(m, k->mlp_proj_b);
    }
    init_ones(m, g->lnf_w);
    init_zero(m, g->lnf_b);
}

/* ---- activations -------------------------------------------------------------------- */

/* "h.<l>.<what>" [rows, cols] without a gradient (cols 0: a vector) */
static void add_act(gpt *g, float **view, int l, const char *what, int rows, int cols) {
    char name[ACT_NAME_MAX];
    if (l >= 0) snprintf(name, sizeof name, "h.%d.%s", l, what);
    else snprintf(name, sizeof name, "%s", what);
    if (cols) acts_add(&g->mem, view, name, 2, (int[]){rows, cols}, 0);
    else acts_add(&g->mem, view, name, 1, (int[]){rows}, 0);
}

static void declare_block(gpt *g, gpt_block_acts *a, int l) {
    const gpt_config *c = &g->cfg;
    int N = g->cap_B * g->cap_T, C = c->n_embd;
    add_act(g, &a->ln1, l, "ln1", N, C);
    add_act(g, &a->ln1_mean, l, "ln1_mean", N, 0);
    add_act(g, &a->ln1_rstd, l, "ln1_rstd", N, 0);
    add_act(g, &a->qkv, l, "qkv", N, 3 * C);
    char name[ACT_NAME_MAX];
    snprintf(name, sizeof name, "h.%d.att", l);
    acts_add(&g->mem, &a->att, name, 4, (int[]){g->cap_B, c->n_head, g->cap_T, g->cap_T}, 0);
    add_act(g, &a->atty, l, "atty", N, C);
    add_act(g, &a->res_mid, l, "res_mid", N, C);
    add_act(g, &a->ln2, l, "ln2", N, C);
    add_act(g, &a->ln2_mean, l, "ln2_mean", N, 0);
    add_act(g, &a->ln2_rstd, l, "ln2_rstd", N, 0);
    add_act(g, &a->fch, l, "fch", N, 4 * C);
    add_act(g, &a->fch_gelu, l, "fch_gelu", N, 4 * C);
    add_act(g, &a->res_out, l, "res_out", N, C);
}

/* Every buffer of forward and backward: what the forward keeps, then the backward's own. */
static void declare_acts(gpt *g) {
    const gpt_config *c = &g->cfg;
    int N = g->cap_B * g->cap_T, C = c->n_embd, V = c->vocab_size;
    add_act(g, &g->x0, -1, "x0", N, C);
    for (int l = 0; l < c->n_layer; l++) declare_block(g, &g->acts[l], l);
    add_act(g, &g->lnf, -1, "lnf", N, C);
    add_act(g, &g->lnf_mean, -1, "lnf_mean", N, 0);
    add_act(g, &g->lnf_rstd, -1, "lnf_rstd", N, 0);
    add_act(g, &g->logits, -1, "logits", N, V);
    add_act(g, &g->probs, -1, "probs", N, V);
    add_act(g, &g->losses, -1, "losses", N, 0);
    add_act(g, &g->dres, -1, "dres", N, C);
    add_act(g, &g->dln, -1, "dln", N, C);
    add_act(g, &g->datty, -1, "datty", N, C);
    add_act(g, &g->dqkv, -1, "dqkv", N, 3 * C);
    add_act(g, &g->dfch_gelu, -1, "dfch_gelu", N, 4 * C);
    add_act(g, &g->dfch, -1, "dfch", N, 4 * C);
    acts_add_i32(&g->mem, &g->tokens, "tokens", 1, (int[]){N});
    acts_add_i32(&g->mem, &g->targets, "targets", 1, (int[]){N});
    acts_scratch(&g->mem, attention_scratch_floats(g->cap_B, g->cap_T, c->n_embd, c->n_head));
}

void gpt_alloc_acts(gpt *g, int B, int T) {
    if (B < 1 || T < 1 || T > g->cfg.block_size)
        DIE("gpt: activations for %d x %d tokens (block_size %d)", B, T, g->cfg.block_size);
    if (g->mem.arena) DIE("gpt: activations allocated twice");
    g->cap_B = B, g->cap_T = T;
    g->acts = xcalloc((size_t)g->cfg.n_layer, sizeof *g->acts);
    declare_acts(g);
    acts_alloc(&g->mem, 0); /* no twin: the backward keeps its own gradient buffers */
}

void gpt_free(gpt *g) {
    free(g->blocks);
    free(g->acts);
    acts_free(&g->mem);
    memset(g, 0, sizeof *g);
}

/* ---- forward ------------------------------------------------------------------------ */

static const float *param(const model *m, int i) { return i < 0 ? NULL : model_param(m, i); }
static float *grad(const model *m, int i) { return i < 0 ? NULL : model_grad(m, i); }

/* x[N,C] (the residual stream entering the block) -> a->res_out[N,C] */
static void block_forward(const gpt *g, const model *m, const gpt_block *k, gpt_block_acts *a,
                          const float *x) {
    int B = g->B, T = g->T, N = B * T, C = g->cfg.n_embd, NH = g->cfg.n_head;
    size_t NC = (size_t)N * C;
    /* attention half: res_mid = x + attn_proj(attention(qkv(ln_1(x)))) */
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, param(m, k->ln1_w), param(m, k->ln1_b),
                      N, C);
    linear_forward(a->qkv, a->ln1, param(m, k->qkv_w), param(m, k->qkv_b), N, C, 3 * C);
    attention_forward(a->atty, a->att, a->qkv, B, T, C, NH);
    linear_forward(a->res_mid, a->atty, param(m, k->attn_proj_w), param(m, k->attn_proj_b), N, C,
                   C);
    residual_forward(a->res_mid, a->res_mid, x, NC); /* in place: no buffer for the branch */
    /* MLP half: res_out = res_mid + mlp_proj(gelu(fc(ln_2(res_mid)))) */
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, param(m, k->ln2_w),
                      param(m, k->ln2_b), N, C);
    linear_forward(a->fch, a->ln2, param(m, k->fc_w), param(m, k->fc_b), N, C, 4 * C);
    gelu_forward(a->fch_gelu, a->fch, 4 * NC);
    linear_forward(a->res_out, a->fch_gelu, param(m, k->mlp_proj_w), param(m, k->mlp_proj_b), N,
                   4 * C, C);
    residual_forward(a->res_out, a->res_out, a->res_mid, NC);
}

/* the residual stream entering block l (l = n_layer: leaving the last block) */
static const float *stream_in(const gpt *g, int l) { return l == 0 ? g->x0 : g->acts[l - 1].res_out; }

float gpt_forward(gpt *g, const model *m, const int32_t *tokens, const int32_t *targets, int B,
                  int T) {
    const gpt_config *c = &g->cfg;
    if (B < 1 || T < 1 || B > g->cap_B || T > g->cap_T)
        DIE("gpt_forward: %d x %d tokens exceed the activations (%d x %d)", B, T, g->cap_B,
            g->cap_T);
    int N = B * T, C = c->n_embd, V = c->vocab_size;
    for (int n = 0; n < N; n++)
        if (tokens[n] < 0 || tokens[n] >= V)
            DIE("gpt_forward: tokens[%d] = %d outside the vocabulary [0, %d)", n, (int)tokens[n], V);
    g->B = B, g->T = T, g->has_targets = targets != NULL;
    kernels_to_device(g->tokens, tokens, (size_t)N * sizeof *tokens);
    embedding_forward(g->x0, g->tokens, model_param(m, g->wte), model_param(m, g->wpe), B, T, C);
    for (int l = 0; l < c->n_layer; l++)
        block_forward(g, m, &g->blocks[l], &g->acts[l], stream_in(g, l));
    const float *x = stream_in(g, c->n_layer);
    layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, x, param(m, g->lnf_w), param(m, g->lnf_b),
                      N, C);
    if (!targets) { /* generation: the head only for each sequence's last position */
        for (int b = 0; b < B; b++)
            linear_forward(g->logits + (size_t)b * V, g->lnf + ((size_t)b * T + T - 1) * C,
                           model_param(m, g->wte), NULL, 1, C, V);
        return 0.0f;
    }
    kernels_to_device(g->targets, targets, (size_t)N * sizeof *targets);
    /* wte[Vp,C] row-major: its first V rows are the head's weight [V,C] */
    linear_forward(g->logits, g->lnf, model_param(m, g->wte), NULL, N, C, V);
    return softmax_xent_forward(g->probs, g->losses, g->logits, g->targets, N, V);
}

/* ---- backward ----------------------------------------------------------------------- */

static void zero(float *p, size_t n) { kernels_zero(p, n * sizeof *p); }

/* On entry g->dres holds d loss / d res_out of the block; on return d loss / d x, where x
 * is the stream that entered it (the same buffer: the skip paths pass it through). */
static void block_backward(gpt *g, model *m, const gpt_block *k, const gpt_block_acts *a,
                           const float *x) {
    int B = g->B, T = g->T, N = B * T, C = g->cfg.n_embd, NH = g->cfg.n_head;
    size_t NC = (size_t)N * C;
    /* MLP half */
    zero(g->dfch_gelu, 4 * NC);
    linear_backward(g->dfch_gelu, grad(m, k->mlp_proj_w), grad(m, k->mlp_proj_b), g->dres,
                    a->fch_gelu, param(m, k->mlp_proj_w), N, 4 * C, C);
    zero(g->dfch, 4 * NC);
    gelu_backward(g->dfch, g->dfch_gelu, a->fch, 4 * NC);
    zero(g->dln, NC);
    linear_backward(g->dln, grad(m, k->fc_w), grad(m, k->fc_b), g->dfch, a->ln2,
                    param(m, k->fc_w), N, C, 4 * C);
    layernorm_backward(g->dres, grad(m, k->ln2_w), grad(m, k->ln2_b), g->dln, a->res_mid,
                       param(m, k->ln2_w), a->ln2_mean, a->ln2_rstd, N, C);
    /* attention half: dres is now d loss / d res_mid */
    zero(g->datty, NC);
    linear_backward(g->datty, grad(m, k->attn_proj_w), grad(m, k->attn_proj_b), g->dres, a->atty,
                    param(m, k->attn_proj_w), N, C, C);
    zero(g->dqkv, 3 * NC);
    attention_backward(g->dqkv, g->datty, a->qkv, a->att, g->mem.scratch, B, T, C, NH);
    zero(g->dln, NC);
    linear_backward(g->dln, grad(m, k->qkv_w), grad(m, k->qkv_b), g->dqkv, a->ln1,
                    param(m, k->qkv_w), N, C, 3 * C);
    layernorm_backward(g->dres, grad(m, k->ln1_w), grad(m, k->ln1_b), g->dln, x,
                       param(m, k->ln1_w), a->ln1_mean, a->ln1_rstd, N, C);
}

void gpt_backward(gpt *g, model *m, float scale) {
    if (!g->has_targets) DIE("gpt_backward without a forward that computed the loss");
    const gpt_config *c = &g->cfg;
    int N = g->B * g->T, C = c->n_embd, V = c->vocab_size;
    size_t NC = (size_t)N * C;
    float *dlogits = g->logits; /* the logits are dead once probs exist */
    zero(dlogits, (size_t)N * V);
    softmax_xent_backward(dlogits, g->probs, g->targets, N, V, scale);
    /* tied head: its weight gradient lands in wte's rows 0..V-1 */
    zero(g->dln, NC);
    linear_backward(g->dln, model_grad(m, g->wte), NULL, dlogits, g->lnf, model_param(m, g->wte),
                    N, C, V);
    zero(g->dres, NC);
    layernorm_backward(g->dres, grad(m, g->lnf_w), grad(m, g->lnf_b), g->dln,
                       stream_in(g, c->n_layer), param(m, g->lnf_w), g->lnf_mean, g->lnf_rstd, N,
                       C);
    model_grads_ready(m, g->lnf_w); /* ln_f is declared last */
    for (int l = c->n_layer - 1; l >= 0; l--) {
        block_backward(g, m, &g->blocks[l], &g->acts[l], stream_in(g, l));
        model_grads_ready(m, g->blocks[l].ln1_w); /* block l and everything after it */
    }
    embedding_backward(model_grad(m, g->wte), model_grad(m, g->wpe), g->dres, g->tokens, g->B,
                       g->T, C);
    model_grads_ready(m, g->wte); /* the whole arena: wte also took the head's gradient */
    g->has_targets = 0; /* dlogits overwrote the logits: a second backward would be wrong */
}
