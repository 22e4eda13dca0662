/* model.h: a GPT-2 style decoder-only transformer: its tensors, activations, forward and backward.
 *
 * The model (model.c) is independent of the trainer, MPI and files: it declares its tensors
 * in a model's arenas and runs forward/backward on explicit token arrays, so tests can
 * build one in a few lines.
 *
 * Shapes: B sequences of T tokens, N = B*T rows, C = n_embd channels, NH heads,
 * V = vocab_size (ids that can occur), Vp = padded_vocab (rows of the token embedding). */
#ifndef DTRAIN_GPT_MODEL_H
#define DTRAIN_GPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"
#include "activations.h"
#include "rng.h"

typedef struct gpt_config {
    int n_layer, n_head, n_embd;
    int block_size;   /* longest sequence: rows of the position embedding */
    int vocab_size;   /* V: token ids 0 .. V-1; the LM head produces V logits */
    int padded_vocab; /* Vp >= V: rows of wte; rows V .. Vp-1 stay zero and unused */
    int bias;         /* linear and LayerNorm biases */
} gpt_config;

/* v rounded up to a multiple of `multiple` */
int gpt_pad_vocab(int v, int multiple);

/* Parameter count. with_padding = 0 counts only the V real rows of wte: the count of the
 * equivalent PyTorch (nanoGPT) model, whose tied embedding has exactly V rows, including the
 * position embedding; this is what the trainer prints. with_padding = 1 counts the arena's
 * tensors as allocated (Vp rows), llm.c's convention. Examples (tests/test_gpt_model.c):
 *   4 layers, 4 heads, 128 channels, block 64, V = 65 (Vp 128), no biases: 804,096 / 812,160
 *   GPT-2 small (12/12/768, block 1024, biases), V = 50257 (Vp 50304): 124,439,808 / 124,475,904 */
size_t gpt_num_params(const gpt_config *c, int with_padding);

/* Tensor indices of one block in the model; the *_b are -1 without biases. */
typedef struct gpt_block {
    int ln1_w, ln1_b;
    int qkv_w, qkv_b;             /* [3C, C], [3C] */
    int attn_proj_w, attn_proj_b; /* [C, C], [C] */
    int ln2_w, ln2_b;
    int fc_w, fc_b;               /* [4C, C], [4C] */
    int mlp_proj_w, mlp_proj_b;   /* [C, 4C], [C] */
} gpt_block;

/* What one block's forward keeps for its backward. */
typedef struct gpt_block_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N,C], [N], [N] */
    float *qkv;                       /* [N,3C] */
    float *att;                       /* [B,NH,T,T] attention probabilities */
    float *atty;                      /* [N,C] attention output, input of attn_proj */
    float *res_mid;                   /* [N,C] residual stream after the attention half */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N,C], [N], [N] */
    float *fch;                       /* [N,4C] fc output, before GELU */
    float *fch_gelu;                  /* [N,4C] */
    float *res_out;                   /* [N,C] residual stream after the block */
} gpt_block_acts;

typedef struct gpt {
    gpt_config cfg;
    int wte, wpe, lnf_w, lnf_b; /* tensor indices (lnf_b -1 without biases) */
    gpt_block *blocks;          /* [n_layer] */

    /* Activations, declared in mem by gpt_alloc_acts for up to cap_B sequences of cap_T
     * tokens (N = cap_B * cap_T rows); a forward with fewer uses the leading rows. They are
     * the backend's memory (a GPU's): the host reads them only through kernels_to_host. */
    int cap_B, cap_T;
    int B, T;             /* shape of the last forward */
    int has_targets;      /* the last forward computed the loss (backward allowed) */
    activations mem;      /* the arena behind every pointer below */
    int32_t *tokens;      /* [N] inputs of the last forward (the embedding backward) */
    int32_t *targets;     /* [N] */
    float *x0;            /* [N,C] embeddings: the residual stream entering block 0 */
    gpt_block_acts *acts; /* [n_layer] */
    float *lnf, *lnf_mean, *lnf_rstd; /* [N,C], [N], [N] */
    float *logits;        /* [N,V]; the backward reuses it for dlogits */
    float *probs;         /* [N,V] */
    float *losses;        /* [N] per-token cross-entropy */
    /* Gradient buffers of the backward, reused by every block (declared without a twin:
     * the blocks' activations need no gradient of their own). */
    float *dres;          /* [N,C] gradient of the residual stream */
    float *dln;           /* [N,C] gradient of a LayerNorm output */
    float *datty;         /* [N,C] */
    float *dqkv;          /* [N,3C] */
    float *dfch_gelu;     /* [N,4C] */
    float *dfch;          /* [N,4C] */
    /* the attention backward's scratch: mem.scratch */
} gpt;

/* Declares the model's tensors in m (before model_alloc) and records their indices.
 * Weight matrices and embeddings decay, LayerNorm weights and biases do not. Sets
 * m->nparams to gpt_num_params(c, 0): the padded rows of wte are padding, like the
 * arenas' alignment, so the trainer prints the PyTorch count. */
void gpt_build(gpt *g, model *m, const gpt_config *c);

/* GPT-2 initialisation: weights and embeddings N(0, 0.02), the two residual projections of
 * each block N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weights 1; the padded rows
 * of wte 0 (they receive no gradient, so they stay 0). */
void gpt_init_params(const gpt *g, model *m, rng *r);

/* Declares and allocates the activation and gradient buffers for up to B sequences of
 * T <= block_size tokens (once, at set-up). */
void gpt_alloc_acts(gpt *g, int B, int T);
void gpt_free(gpt *g);

/* Forward over tokens[B,T] (ids < V; B <= cap_B, T <= cap_T), host arrays that it copies
 * into the activations (the only host-to-device traffic of a step).
 * With targets[B,T]: logits[B*T, V], probs and per-token losses; returns the mean loss.
 * With targets NULL (generation): only the last position of each sequence reaches the LM
 * head, logits[B, V]; returns 0. */
float gpt_forward(gpt *g, const model *m, const int32_t *tokens, const int32_t *targets, int B,
                  int T);

/* After a forward with targets: accumulates into m's gradient arena the gradient of
 * scale * (sum of the B*T token losses). scale = 1/(B*T) gives the mean loss; the job
 * divides further by the number of micro-batches it accumulates. Reports its progress with
 * model_grads_ready: after ln_f, after each block (last to first), after the embeddings. */
void gpt_backward(gpt *g, model *m, float scale);

#endif
