/* test_gpt_model.c: the GPT model of jobs/gpt as a whole, without trainer, MPI or files.
 *
 *  - Forward: logits and loss of a tiny model against a double-precision GPT-2 forward
 *    written here from the formulas (1e-5: float32 sums of a few dozen O(1) terms;
 *    measured 5e-7).
 *  - Gradient: every parameter tensor's gradient, the tied wte included, against central
 *    finite differences of L = sum of the token losses, on a tiny model (V = 11 padded to 16,
 *    T = 5 of block 6, C = 8, 2 heads, 2 layers, B = 2), with and without biases. Parameters
 *    are uniform (weights +-0.3, LayerNorm weights 1 +- 0.3, embeddings +-1), not the
 *    GPT-2 init: with std 0.02 every gradient would be ~1e-3 and the absolute floor of
 *    gradcheck's error (max(1, |g|)) would hide a wrong one. The ranges set the error
 *    budget (gradcheck.h): smaller embeddings make the first LayerNorm curve sharply
 *    within h (truncation error 1e-2 at +-0.2), larger weights make L larger and its
 *    float32 rounding / h grow. Measured worst over all tensors: 4e-4 at h = 1e-2;
 *    GRAD_TOL 2e-3 keeps a 5x margin, while a missing term or wrong index is O(1e-1).
 *  - Parameter counts against the PyTorch and llm.c figures (see gpt_num_params).
 *  - Initialisation statistics, the loss at init (ln V), overfitting one batch with AdamW,
 *    and the generation path (last-position logits, shorter contexts) against the full one.
 *  - Sampling from logits: greedy, top-k, and draw frequencies against the softmax.
 * The finite-difference checks run at one thread (see test_gpt_kernels.c, "Threads"). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/gpt.h"
#include "gradcheck.h"
#include "kernels.h"
#include "optim.h"

#define GRAD_TOL 2e-3
#define H 1e-2
#define W_RANGE 0.3f   /* weights U(-W_RANGE, W_RANGE) in the gradient checks */
#define EMB_RANGE 1.0f /* embeddings U(-EMB_RANGE, EMB_RANGE) */
#define CHECK_ALL ((size_t)1 << 30)

/* ---- a small model on explicit tokens ----------------------------------------------- */

typedef struct net {
    gpt g;
    model m;
    int B, T;
    int32_t *tokens, *targets;
} net;

static void net_make(net *n, gpt_config c, int B, int T, uint64_t seed) {
    memset(n, 0, sizeof *n);
    gpt_build(&n->g, &n->m, &c);
    model_alloc(&n->m);
    gpt_alloc_acts(&n->g, B, T);
    n->B = B, n->T = T;
    n->tokens = calloc((size_t)B * T, sizeof(int32_t));
    n->targets = calloc((size_t)B * T, sizeof(int32_t));
    cr_assert(n->tokens && n->targets);
    rng r;
    rng_seed(&r, seed, 7);
    for (int i = 0; i < B * T; i++) {
        n->tokens[i] = (int32_t)rng_below(&r, (uint64_t)c.vocab_size);
        n->targets[i] = (int32_t)rng_below(&r, (uint64_t)c.vocab_size);
    }
}

static void net_free(net *n) {
    gpt_free(&n->g);
    model_free(&n->m);
    free(n->tokens);
    free(n->targets);
}

static void net_init_gpt2(net *n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 1);
    gpt_init_params(&n->g, &n->m, &r);
}

/* weights U(-W_RANGE, W_RANGE), LayerNorm weights 1 + U(-W_RANGE, W_RANGE), embeddings
 * U(-EMB_RANGE, EMB_RANGE), padded rows of wte 0 */
static void net_init_random(net *n, uint64_t seed) {
    gc_fill_uniform(n->m.params, n->m.nfloats, seed, -W_RANGE, W_RANGE);
    for (int i = 0; i < 2; i++) {
        int k = i ? n->g.wpe : n->g.wte;
        gc_fill_uniform(model_param(&n->m, k), n->m.tensors[k].numel, seed + 1 + (uint64_t)i,
                        -EMB_RANGE, EMB_RANGE);
    }
    for (int i = 0; i < n->m.ntensors; i++)
        if (strstr(n->m.tensors[i].name, "ln_") && strstr(n->m.tensors[i].name, ".weight"))
            for (size_t k = 0; k < n->m.tensors[i].numel; k++)
                model_param(&n->m, i)[k] += 1.0f;
    const gpt_config *c = &n->g.cfg;
    size_t used = (size_t)c->vocab_size * c->n_embd;
    size_t all = (size_t)c->padded_vocab * c->n_embd;
    memset(model_param(&n->m, n->g.wte) + used, 0, (all - used) * sizeof(float));
}

static float net_forward(net *n) {
    return gpt_forward(&n->g, &n->m, n->tokens, n->targets, n->B, n->T);
}

/* the summed token losses, in double */
static double net_loss_sum(void *ctx) {
    net *n = ctx;
    net_forward(n);
    double s = 0;
    for (int i = 0; i < n->B * n->T; i++) s += n->g.losses[i];
    return s;
}

static gpt_config tiny_config(int bias) {
    return (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 8, .block_size = 6,
                        .vocab_size = 11, .padded_vocab = 16, .bias = bias};
}

/* ---- forward against a reference ---------------------------------------------------- */

/* GPT-2's forward for one sequence, in double, straight from the formulas and independent
 * of kernels.h: the check of the wiring (which input each LayerNorm sees, the q/k/v column
 * layout, where the residuals add, the tied head) that gradient checks cannot give, since
 * those compare the backward with whatever the forward computes. */
typedef struct ref {
    const model *m;
    const gpt *g;
    int T, C, NH;
} ref;

static const float *ref_param(const ref *r, int i) { return i < 0 ? NULL : model_param(r->m, i); }

/* out[T,C] = layernorm of each row of x[T,C] */
static void ref_layernorm(double *out, const double *x, const float *w, const float *b, int T,
                          int C) {
    for (int t = 0; t < T; t++) {
        const double *row = x + (size_t)t * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += row[c] / C;
        for (int c = 0; c < C; c++) var += (row[c] - mean) * (row[c] - mean) / C;
        for (int c = 0; c < C; c++)
            out[(size_t)t * C + c] = (row[c] - mean) / sqrt(var + 1e-5) * w[c] + (b ? b[c] : 0.0);
    }
}

/* out[T,OC] (+)= x[T,IC] w[OC,IC]^T + b */
static void ref_linear(double *out, int accumulate, const double *x, const float *w,
                       const float *b, int T, int IC, int OC) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += x[(size_t)t * IC + i] * w[(size_t)o * IC + i];
            out[(size_t)t * OC + o] = (accumulate ? out[(size_t)t * OC + o] : 0.0) + s;
        }
}

/* y[T,C] = causal softmax(q k^T / sqrt(HS)) v per head, q|k|v the thirds of qkv[T,3C] */
static void ref_attention(double *y, const double *qkv, int T, int C, int NH) {
    int HS = C / NH;
    double att[16];
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < T; i++) {
            const double *q = qkv + (size_t)i * 3 * C + h * HS;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                const double *k = qkv + (size_t)j * 3 * C + C + h * HS;
                double s = 0;
                for (int d = 0; d < HS; d++) s += q[d] * k[d];
                att[j] = s / sqrt((double)HS);
                mx = fmax(mx, att[j]);
            }
            for (int j = 0; j <= i; j++) sum += att[j] = exp(att[j] - mx);
            for (int d = 0; d < HS; d++) {
                double acc = 0;
                for (int j = 0; j <= i; j++) acc += att[j] / sum * qkv[(size_t)j * 3 * C + 2 * C + h * HS + d];
                y[(size_t)i * C + h * HS + d] = acc;
            }
        }
}

static double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 /* sqrt(2/pi) */ * (x + 0.044715 * x * x * x)));
}

/* logits[T,V] of one sequence; returns its summed loss */
static double ref_forward(const ref *r, const int32_t *tok, const int32_t *tgt, double *logits) {
    int T = r->T, C = r->C, V = r->g->cfg.vocab_size;
    double x[16 * 64], h[16 * 64], qkv[16 * 3 * 64], y[16 * 64], f[16 * 4 * 64];
    cr_assert(T <= 16 && C <= 64);
    const float *wte = model_param(r->m, r->g->wte), *wpe = model_param(r->m, r->g->wpe);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = (double)wte[(size_t)tok[t] * C + c] + wpe[(size_t)t * C + c];
    for (int l = 0; l < r->g->cfg.n_layer; l++) {
        const gpt_block *k = &r->g->blocks[l];
        ref_layernorm(h, x, ref_param(r, k->ln1_w), ref_param(r, k->ln1_b), T, C);
        ref_linear(qkv, 0, h, ref_param(r, k->qkv_w), ref_param(r, k->qkv_b), T, C, 3 * C);
        ref_attention(y, qkv, T, C, r->NH);
        ref_linear(x, 1, y, ref_param(r, k->attn_proj_w), ref_param(r, k->attn_proj_b), T, C, C);
        ref_layernorm(h, x, ref_param(r, k->ln2_w), ref_param(r, k->ln2_b), T, C);
        ref_linear(f, 0, h, ref_param(r, k->fc_w), ref_param(r, k->fc_b), T, C, 4 * C);
        for (int i = 0; i < T * 4 * C; i++) f[i] = ref_gelu(f[i]);
        ref_linear(x, 1, f, ref_param(r, k->mlp_proj_w), ref_param(r, k->mlp_proj_b), T, 4 * C, C);
    }
    ref_layernorm(h, x, ref_param(r, r->g->lnf_w), ref_param(r, r->g->lnf_b), T, C);
    ref_linear(logits, 0, h, wte, NULL, T, C, V);
    double loss = 0;
    for (int t = 0; t < T; t++) {
        const double *z = logits + (size_t)t * V;
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        loss += mx + log(sum) - z[tgt[t]];
    }
    return loss;
}

static void check_forward(int bias) {
    kernels_set_threads(2);
    net n;
    net_make(&n, tiny_config(bias), 2, 5, 21);
    net_init_random(&n, 22);
    float loss = net_forward(&n);
    int V = n.g.cfg.vocab_size;
    ref r = {&n.m, &n.g, n.T, n.g.cfg.n_embd, n.g.cfg.n_head};
    double want = 0, logits[5 * 16], worst = 0;
    for (int b = 0; b < n.B; b++) {
        want += ref_forward(&r, n.tokens + b * n.T, n.targets + b * n.T, logits);
        for (int i = 0; i < n.T * V; i++) {
            double got = n.g.logits[(size_t)b * n.T * V + i];
            worst = fmax(worst, fabs(got - logits[i]) / fmax(1.0, fabs(logits[i])));
        }
    }
    want /= n.B * n.T;
    cr_expect(worst < 1e-5, "bias=%d: logits differ from the reference by %g", bias, worst);
    cr_expect(fabs(loss - want) < 1e-5 * fmax(1.0, want), "bias=%d: loss %g, reference %g", bias,
              loss, want);
    net_free(&n);
}

Test(gpt_model, forward_matches_reference_without_bias) { check_forward(0); }
Test(gpt_model, forward_matches_reference_with_bias) { check_forward(1); }

/* ---- gradients ---------------------------------------------------------------------- */

static void check_all_gradients(int bias) {
    kernels_set_threads(1);
    net n;
    net_make(&n, tiny_config(bias), 2, 5, 42 + (uint64_t)bias);
    net_init_random(&n, 1000 + (uint64_t)bias);
    model_zero_grads(&n.m);
    net_forward(&n);
    gpt_backward(&n.g, &n.m, 1.0f);
    float *analytic = malloc(n.m.nfloats * sizeof(float));
    cr_assert(analytic);
    memcpy(analytic, n.m.grads, n.m.nfloats * sizeof(float));
    for (int i = 0; i < n.m.ntensors; i++) {
        const tensor_info *ti = &n.m.tensors[i];
        double err = gradcheck(net_loss_sum, &n, model_param(&n.m, i), analytic + ti->offset,
                               ti->numel, H, CHECK_ALL, GRAD_TOL, ti->name);
        cr_expect(err < GRAD_TOL, "bias=%d %s: gradient error %g", bias, ti->name, err);
    }
    /* wte's rows of ids in the input get the embedding's and the head's gradients, the
     * others the head's alone: the check above covered both kinds only if both occur */
    const gpt_config *c = &n.g.cfg;
    int present[16] = {0}, absent = 0;
    for (int i = 0; i < n.B * n.T; i++) present[n.tokens[i]] = 1;
    for (int v = 0; v < c->vocab_size; v++) absent += !present[v];
    cr_expect(absent > 0 && absent < c->vocab_size, "every or no id occurs; change the seed");
    /* the head reads only the V real rows of wte, the embedding only real ids */
    const float *dwte = analytic + n.m.tensors[n.g.wte].offset;
    for (size_t k = (size_t)c->vocab_size * c->n_embd; k < (size_t)c->padded_vocab * c->n_embd; k++)
        cr_expect(dwte[k] == 0.0f, "padded row of wte got a gradient at %zu", k);
    /* wpe rows beyond T are never used */
    const float *dwpe = analytic + n.m.tensors[n.g.wpe].offset;
    for (size_t k = (size_t)n.T * c->n_embd; k < (size_t)c->block_size * c->n_embd; k++)
        cr_expect(dwpe[k] == 0.0f, "unused wpe row got a gradient at %zu", k);
    free(analytic);
    net_free(&n);
}

Test(gpt_model, gradients_match_finite_differences_without_bias) { check_all_gradients(0); }
Test(gpt_model, gradients_match_finite_differences_with_bias) { check_all_gradients(1); }

/* Two forward/backward passes accumulate exactly twice one: no internal buffer carries
 * anything over from a previous pass. */
Test(gpt_model, backward_accumulates_and_leaves_no_state) {
    kernels_set_threads(2);
    net n;
    net_make(&n, tiny_config(1), 2, 5, 5);
    net_init_random(&n, 6);
    model_zero_grads(&n.m);
    net_forward(&n);
    gpt_backward(&n.g, &n.m, 0.1f);
    float *once = malloc(n.m.nfloats * sizeof(float));
    cr_assert(once);
    memcpy(once, n.m.grads, n.m.nfloats * sizeof(float));
    net_forward(&n);
    gpt_backward(&n.g, &n.m, 0.1f);
    double worst = 0;
    for (size_t i = 0; i < n.m.nfloats; i++) {
        double err = fabs(n.m.grads[i] - 2.0 * once[i]) / fmax(1e-3, fabs(2.0 * once[i]));
        if (!(err <= worst)) worst = err;
    }
    cr_expect(worst < 1e-5, "second pass is not twice the first (relative error %g)", worst);
    free(once);
    net_free(&n);
}

/* ---- parameter counts --------------------------------------------------------------- */

static gpt_config config_of(int L, int NH, int C, int block, int bias, int V, int pad) {
    return (gpt_config){.n_layer = L, .n_head = NH, .n_embd = C, .block_size = block,
                        .vocab_size = V, .padded_vocab = gpt_pad_vocab(V, pad), .bias = bias};
}

/* builds (no allocation) and checks both conventions against the model's own tally */
static void expect_counts(gpt_config c, size_t pytorch, size_t padded, const char *what) {
    gpt g;
    model m = {0};
    gpt_build(&g, &m, &c);
    size_t arena = 0;
    for (int i = 0; i < m.ntensors; i++) arena += m.tensors[i].numel;
    cr_expect(gpt_num_params(&c, 0) == pytorch, "%s: %zu parameters, expected %zu", what,
              gpt_num_params(&c, 0), pytorch);
    cr_expect(gpt_num_params(&c, 1) == padded, "%s: %zu with padding, expected %zu", what,
              gpt_num_params(&c, 1), padded);
    cr_expect(m.nparams == pytorch, "%s: model reports %zu", what, m.nparams);
    cr_expect(arena == padded, "%s: arena tensors hold %zu", what, arena);
    gpt_free(&g);
    model_free(&m);
}

/* The default recipe, tinyshakespeare's 65 characters. nanoGPT's model (tied head, no
 * biases) holds 804,096 parameters: 4 * (12 C^2 + 2C) blocks + C ln_f + 65 C wte + 64 C
 * wpe, position embedding included (nanoGPT's printed "non-embedding" figure subtracts
 * wpe: 795,904). Padding 65 -> 128 adds 63 unused rows of wte: 812,160 in the arena. */
Test(gpt_model, param_count_default_config) {
    cr_expect(gpt_pad_vocab(65, 64) == 128);
    expect_counts(config_of(4, 4, 128, 64, 0, 65, 64), 804096, 812160, "default, char");
    /* the byte tokenizer: 256 ids, already a multiple of 64 */
    expect_counts(config_of(4, 4, 128, 64, 0, 256, 64), 828544, 828544, "default, byte");
}

/* GPT-2 small: 12 (12 C^2 + 13 C) + 2C + 1024 C + V C with C = 768. V = 50257 gives
 * Hugging Face's 124,439,808; llm.c pads to 50304 and reports 124,475,904. */
Test(gpt_model, param_count_gpt2_small) {
    cr_expect(gpt_pad_vocab(50257, 64) == 50304);
    expect_counts(config_of(12, 12, 768, 1024, 1, 50257, 64), 124439808, 124475904, "GPT-2");
    expect_counts(config_of(12, 12, 768, 1024, 1, 256, 64), 86039040, 86039040, "GPT-2 bytes");
}

Test(gpt_model, decay_only_on_matrices) {
    gpt g;
    model m = {0};
    gpt_config c = tiny_config(1);
    gpt_build(&g, &m, &c);
    for (int i = 0; i < m.ntensors; i++)
        cr_expect(m.tensors[i].decay == (m.tensors[i].ndim == 2), "%s: decay %d",
                  m.tensors[i].name, m.tensors[i].decay);
    cr_expect(model_find(&m, "h.1.attn.c_attn.weight") >= 0);
    cr_expect(model_find(&m, "h.0.mlp.c_proj.bias") >= 0);
    cr_expect(model_find(&m, "ln_f.bias") >= 0);
    gpt_free(&g);
    model_free(&m);
}

/* ---- initialisation and training ---------------------------------------------------- */

static double std_of(const float *p, size_t n) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += p[i], s2 += (double)p[i] * p[i];
    double mean = s / (double)n;
    return sqrt(s2 / (double)n - mean * mean);
}

static int all_equal(const float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

Test(gpt_model, gpt2_init_statistics) {
    gpt g;
    model m = {0};
    gpt_config c = config_of(4, 4, 128, 64, 1, 65, 64);
    gpt_build(&g, &m, &c);
    model_alloc(&m);
    rng r;
    rng_seed(&r, 9, 1);
    gpt_init_params(&g, &m, &r);
    const float proj = 0.02f / sqrtf(8.0f);
    for (int i = 0; i < m.ntensors; i++) {
        const tensor_info *t = &m.tensors[i];
        const float *p = model_param(&m, i);
        const char *name = t->name;
        if (strstr(name, ".bias")) {
            cr_expect(all_equal(p, t->numel, 0.0f), "%s: not zero", name);
        } else if (strstr(name, "ln_")) {
            cr_expect(all_equal(p, t->numel, 1.0f), "%s: not one", name);
        } else {
            size_t n = i == g.wte ? (size_t)c.vocab_size * c.n_embd : t->numel;
            double want = strstr(name, "c_proj") ? proj : 0.02;
            double got = std_of(p, n);
            cr_expect(fabs(got - want) < 0.06 * want, "%s: std %g, want %g", name, got, want);
        }
    }
    const float *pad = model_param(&m, g.wte) + (size_t)c.vocab_size * c.n_embd;
    cr_expect(all_equal(pad, (size_t)(c.padded_vocab - c.vocab_size) * c.n_embd, 0.0f),
              "padded rows of wte are not zero");
    gpt_free(&g);
    model_free(&m);
}

/* Small weights make every logit ~0: the softmax is near uniform over the V real ids (not
 * the Vp padded ones), so the loss is ~ln V. */
Test(gpt_model, loss_at_init_is_log_vocab) {
    net n;
    net_make(&n, config_of(2, 2, 32, 32, 0, 65, 64), 4, 32, 11);
    net_init_gpt2(&n, 12);
    float loss = net_forward(&n);
    cr_expect(fabsf(loss - logf(65.0f)) < 0.05f, "loss at init %g, ln 65 = %g", loss, logf(65.0f));
    net_free(&n);
}

Test(gpt_model, adamw_overfits_one_batch) {
    net n;
    net_make(&n, config_of(2, 2, 32, 16, 1, 11, 64), 4, 16, 13);
    net_init_gpt2(&n, 14);
    optimizer o;
    cr_assert(optim_init(&o, "adamw", &n.m, 0.9f, 0.99f, 1e-8f, 0.1f, 0.0f) == 0);
    float first = 0, loss = 0;
    for (int step = 0; step < 40; step++) {
        model_zero_grads(&n.m);
        loss = net_forward(&n);
        if (step == 0) first = loss;
        gpt_backward(&n.g, &n.m, 1.0f / (float)(n.B * n.T));
        optim_step(&o, &n.m, 1e-2f);
    }
    cr_expect(loss < 0.5f * first, "40 AdamW steps on one batch: loss %g -> %g", first, loss);
    optim_free(&o);
    net_free(&n);
}

/* ---- generation path ------------------------------------------------------------------ */

/* Without targets the head runs on each sequence's last position only; with a shorter
 * context every position sees the same prefix as before (causality), so the logits agree. */
Test(gpt_model, generation_logits_match_training_logits) {
    kernels_set_threads(1);
    net n;
    gpt_config c = tiny_config(1);
    net_make(&n, c, 2, 5, 15);
    net_init_random(&n, 16);
    net_forward(&n);
    int V = c.vocab_size;
    float *full = malloc(sizeof(float) * 10 * (size_t)V);
    cr_assert(full);
    memcpy(full, n.g.logits, sizeof(float) * 10 * (size_t)V);
    for (int T = 1; T <= 5; T++) {
        int32_t ctx[2 * 5];
        for (int b = 0; b < 2; b++) memcpy(ctx + b * T, n.tokens + b * 5, sizeof(int32_t) * T);
        gpt_forward(&n.g, &n.m, ctx, NULL, 2, T);
        for (int b = 0; b < 2; b++)
            for (int v = 0; v < V; v++) {
                float want = full[((size_t)b * 5 + T - 1) * V + v];
                float got = n.g.logits[(size_t)b * V + v];
                cr_expect(fabsf(got - want) <= 1e-5f * fmaxf(1.0f, fabsf(want)),
                          "T=%d b=%d v=%d: %g vs %g", T, b, v, got, want);
            }
    }
    free(full);
    net_free(&n);
}

/* ---- sampling ----------------------------------------------------------------------- */

Test(gpt_sample, greedy_and_top_k) {
    const float logits[6] = {0.5f, 3.0f, -1.0f, 2.5f, 2.9f, -4.0f};
    float work[6];
    rng r;
    rng_seed(&r, 1, 2);
    cr_expect(gpt_sample_token(logits, 6, 0.0f, 0, work, &r) == 1, "temperature 0 is the argmax");
    cr_expect(gpt_sample_token(logits, 6, 1.0f, 1, work, &r) == 1, "top-1 is the argmax");
    int seen[6] = {0};
    for (int i = 0; i < 3000; i++) seen[gpt_sample_token(logits, 6, 1.0f, 3, work, &r)]++;
    cr_expect(seen[0] == 0 && seen[2] == 0 && seen[5] == 0, "top-3 drew an id outside the top 3");
    cr_expect(seen[1] > 0 && seen[3] > 0 && seen[4] > 0);
}

/* At temperature 1 without top-k the draws follow softmax(logits); at temperature 0.5 the
 * distribution sharpens to softmax(2 logits). 20,000 draws: binomial standard deviations
 * below 0.0036, so 0.015 is > 4 sigma. */
Test(gpt_sample, frequencies_follow_the_softmax) {
    const float logits[4] = {1.0f, 0.0f, -1.0f, 0.5f};
    float work[4];
    rng r;
    rng_seed(&r, 3, 4);
    for (int pass = 0; pass < 2; pass++) {
        float temp = pass ? 0.5f : 1.0f;
        double p[4], sum = 0;
        for (int v = 0; v < 4; v++) sum += p[v] = exp(logits[v] / temp);
        int count[4] = {0};
        for (int i = 0; i < 20000; i++) count[gpt_sample_token(logits, 4, temp, 0, work, &r)]++;
        for (int v = 0; v < 4; v++)
            cr_expect(fabs(count[v] / 20000.0 - p[v] / sum) < 0.015, "T=%g id %d: %g vs %g", temp,
                      v, count[v] / 20000.0, p[v] / sum);
    }
}
