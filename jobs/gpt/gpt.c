/* gpt.c: the `gpt` job: GPT-2 style pretraining on a token file, data-parallel.
 *
 * Data. Each rank owns a contiguous shard of /train/tokens and draws its B = batch_size /
 * world windows of block_size + 1 tokens at random offsets inside it (inputs: the first T,
 * targets: the last T). The offsets come from an RNG seeded by (seed, step, rank, micro),
 * so a step's batch is a pure function of the step: resuming needs no data state, and an
 * "epoch" (train tokens / (batch_size x block_size) steps) is only a unit of account;
 * max_steps decides how long training runs.
 *
 * Evaluation. eval_iters x batch_size windows of /val/tokens at offsets from a fixed seed,
 * the same at every evaluation and for every seed, world size and batch split: window j
 * depends only on j. The ranks take contiguous shares of the windows and all-reduce the
 * summed token losses; val_loss is their mean. val_bpb is the same loss in bits per byte
 * of text (summed losses / ln 2 / the bytes the target tokens decode to), which compares
 * runs on different tokenizers (char, byte, BPE). */
#include "gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "tokens.h"
#include "trainer.h"
#include "util.h"

#define VAL_SEED 0x76616c5f77696e64ull /* "val_wind": fixed, independent of `seed` */
#define TRAIN_STREAM 0x747261696eull   /* "train": the domain of the window streams */

static const cfg_spec gpt_keys[] = {
    {"data", CFG_STRING, "data/tinyshakespeare.h5", NULL,
     "token file from `dtrain prepare text` (/train/tokens, /val/tokens, tokenizer)"},
    {"n_layer", CFG_INT, "4", "1..256", "transformer blocks"},
    {"n_head", CFG_INT, "4", "1..256", "attention heads per block (must divide n_embd)"},
    {"n_embd", CFG_INT, "128", "1..16384", "channels of the residual stream"},
    {"block_size", CFG_INT, "64", "1..16384", "context length: tokens per training window"},
    {"bias", CFG_INT, "0", "0..1", "biases in the linear layers and LayerNorms"},
    {"vocab_size", CFG_INT, "0", "0..16777216",
     "vocabulary of the model (0 = the data file's); may exceed the data's, e.g. 50257"},
    {"vocab_pad", CFG_INT, "64", "1..4096",
     "round the embedding's rows up to a multiple of this (padded ids are never used)"},
    {"eval_iters", CFG_INT, "200", "1..", "validation batches (of batch_size windows) per eval"},
    {NULL, 0, NULL, NULL, NULL},
};

/* The recipe of nanoGPT's shakespeare_char example, shrunk to a CPU budget. */
static const char gpt_defaults[] = "batch_size = 12\n"
                                   "lr = 1e-3\n"
                                   "min_lr = 1e-4\n"
                                   "lr_schedule = cosine\n"
                                   "warmup_steps = 100\n"
                                   "max_steps = 2000\n"
                                   "optimizer = adamw\n"
                                   "weight_decay = 0.1\n"
                                   "grad_clip = 1.0\n"
                                   "beta1 = 0.9\n"
                                   "beta2 = 0.99\n"
                                   "eval_interval = 250\n"
                                   "log_interval = 50\n"
                                   "ckpt_interval = 500\n";

typedef struct gpt_run {
    gpt g;
    const char *path;     /* the data file (owned by the config) */
    token_shard *train;   /* this rank's shard */
    token_shard *val;     /* the whole split: eval windows fall anywhere */
    tokenizer *tok;       /* the data's tokenizer: bytes per token for val_bpb */
    int B, T;             /* this rank's micro-batch: B windows of T (+1) tokens */
    int32_t *window;      /* [T+1] */
    int32_t *inputs;      /* [B,T] */
    int32_t *targets;     /* [B,T] */
    float *losses;        /* [B,T] the per-token losses of an eval batch, copied out */
} gpt_run;

/* ---- set-up ------------------------------------------------------------------------- */

static gpt_config config_for(trainer *t, int data_vocab) {
    const config *c = &t->cfg;
    gpt_config g = {
        .n_layer = (int)config_int(c, "n_layer"),
        .n_head = (int)config_int(c, "n_head"),
        .n_embd = (int)config_int(c, "n_embd"),
        .block_size = (int)config_int(c, "block_size"),
        .bias = (int)config_int(c, "bias"),
    };
    long vocab = config_int(c, "vocab_size");
    trainer_check(t, g.n_embd % g.n_head != 0, EXIT_USAGE,
                  "bad value '%d' for key 'n_embd': must be a multiple of n_head (%d)", g.n_embd, g.n_head);
    trainer_check(t, vocab != 0 && vocab < data_vocab, EXIT_USAGE,
                  "bad value '%ld' for key 'vocab_size': %s holds ids up to %d (0 = the data's)", vocab,
                  config_str(c, "data"), data_vocab - 1);
    g.vocab_size = vocab ? (int)vocab : data_vocab;
    g.padded_vocab = gpt_pad_vocab(g.vocab_size, (int)config_int(c, "vocab_pad"));
    return g;
}

static token_shard *open_split(trainer *t, const char *path, const char *split, int rank,
                               int world, long min_tokens) {
    char err[1024];
    token_shard *s = token_shard_open(path, split, rank, world, err, sizeof err);
    trainer_check(t, !s, EXIT_USAGE, "%s", err);
    trainer_check(t, token_shard_size(s) < min_tokens, EXIT_USAGE,
                  "%s: /%s/tokens: %s holds %ld tokens, fewer than block_size + 1 = %ld", path, split,
                  world > 1 ? "this rank's shard" : "the split", token_shard_size(s), min_tokens);
    return s;
}

static void *gpt_create(trainer *t) {
    gpt_run *r = xcalloc(1, sizeof *r);
    r->path = config_str(&t->cfg, "data");
    r->T = (int)config_int(&t->cfg, "block_size");
    r->B = (int)(config_int(&t->cfg, "batch_size") / t->world);
    r->train = open_split(t, r->path, "train", t->rank, t->world, r->T + 1L);
    r->val = open_split(t, r->path, "val", 0, 1, r->T + 1L);
    char err[1024];
    r->tok = tokenizer_load(r->path, err, sizeof err);
    trainer_check(t, !r->tok, EXIT_USAGE, "%s", err);
    gpt_config gc = config_for(t, token_shard_vocab_size(r->train));
    gpt_build(&r->g, &t->model, &gc);
    gpt_alloc_acts(&r->g, r->B, r->T);
    r->window = xmalloc(sizeof *r->window * (size_t)(r->T + 1));
    r->inputs = xmalloc(sizeof *r->inputs * (size_t)r->B * r->T);
    r->targets = xmalloc(sizeof *r->targets * (size_t)r->B * r->T);
    r->losses = xmalloc(sizeof *r->losses * (size_t)r->B * r->T);
    return r;
}

static void gpt_init(void *js, trainer *t, rng *r) {
    gpt_run *run = js;
    gpt_init_params(&run->g, &t->model, r);
}

static long gpt_steps_per_epoch(void *js, trainer *t) {
    gpt_run *r = js;
    long n = token_shard_total(r->train) / (config_int(&t->cfg, "batch_size") * (long)r->T);
    return n > 0 ? n : 1; /* windows are drawn with replacement: even a tiny set has a step */
}

static long gpt_start_epoch(void *js, trainer *t, long epoch) {
    (void)epoch;
    return gpt_steps_per_epoch(js, t);
}

/* ---- batches ------------------------------------------------------------------------ */

/* Reads window `b` of the batch at `pos` of the shard: inputs[b] = tokens[pos, pos+T),
 * targets[b] = tokens[pos+1, pos+T+1). */
static void read_window(gpt_run *r, trainer *t, token_shard *s, const char *split, long pos,
                        int b) {
    char err[1024];
    int T = r->T, V = r->g.cfg.vocab_size;
    int rc = token_shard_read(s, pos, T + 1, r->window, err, sizeof err);
    if (rc != 0) trainer_fail(t, rc == TOKEN_READ_BAD_DATA ? EXIT_USAGE : EXIT_RUNTIME, "%s", err);
    /* the kernels index embeddings by these ids: one bad file must not read out of bounds */
    for (int i = 0; i <= T; i++)
        if (r->window[i] < 0 || r->window[i] >= V)
            trainer_fail(t, EXIT_USAGE, "%s: /%s/tokens[%ld] = %d outside the vocabulary [0, %d)",
                         r->path, split, token_shard_begin(s) + pos + i, (int)r->window[i], V);
    memcpy(r->inputs + (size_t)b * T, r->window, sizeof *r->window * (size_t)T);
    memcpy(r->targets + (size_t)b * T, r->window + 1, sizeof *r->window * (size_t)T);
}

/* The stream of one micro-batch: seeded twice so that no two (step, rank, micro) share one. */
static void window_rng(rng *w, trainer *t, int micro) {
    rng_seed(w, (uint64_t)config_int(&t->cfg, "seed") ^ TRAIN_STREAM, (uint64_t)t->step);
    rng_seed(w, rng_u64(w), ((uint64_t)(uint32_t)t->rank << 32) | (uint32_t)micro);
}

static float gpt_forward_backward(void *js, trainer *t, long step_in_epoch, int micro,
                                  long *items) {
    (void)step_in_epoch; /* epochs repeat step_in_epoch; the windows follow the global step */
    gpt_run *r = js;
    rng w;
    window_rng(&w, t, micro);
    long span = token_shard_size(r->train) - r->T; /* window starts: [0, span) */
    for (int b = 0; b < r->B; b++)
        read_window(r, t, r->train, "train", (long)rng_below(&w, (uint64_t)span), b);
    float loss = gpt_forward(&r->g, &t->model, r->inputs, r->targets, r->B, r->T);
    /* mean over the micro-batch's tokens and the step's micro-batches; the all-reduce
     * then averages over ranks */
    gpt_backward(&r->g, &t->model, 1.0f / ((float)r->B * (float)r->T * (float)t->grad_accum));
    *items = (long)r->B * r->T;
    return loss;
}

/* ---- evaluation --------------------------------------------------------------------- */

static long val_offset(const gpt_run *r, long j) {
    rng w;
    rng_seed(&w, VAL_SEED, (uint64_t)j);
    return (long)rng_below(&w, (uint64_t)(token_shard_size(r->val) - r->T));
}

static void gpt_eval(void *js, trainer *t, metrics *out) {
    gpt_run *r = js;
    long windows = config_int(&t->cfg, "eval_iters") * config_int(&t->cfg, "batch_size");
    long lo = windows * t->rank / t->world, hi = windows * (t->rank + 1) / t->world;
    double sums[3] = {0, 0, 0}; /* summed token losses, tokens, bytes of the target tokens */
    for (long j = lo; j < hi; j += r->B) {
        int n = (int)(hi - j < r->B ? hi - j : r->B);
        for (int b = 0; b < n; b++) read_window(r, t, r->val, "val", val_offset(r, j + b), b);
        gpt_forward(&r->g, &t->model, r->inputs, r->targets, n, r->T);
        /* per token, as the sum in double needs them (the forward's mean is a float) */
        kernels_to_host(r->losses, r->g.losses, sizeof *r->losses * (size_t)n * r->T);
        for (long i = 0; i < (long)n * r->T; i++) {
            const char *bytes;
            sums[0] += r->losses[i];
            sums[2] += tokenizer_decode(r->tok, r->targets[i], &bytes);
        }
        sums[1] += (double)n * r->T;
    }
    comm_allreduce_sum_f64(t->comm, sums, 3);
    metrics_set(out, "val_loss", sums[0] / sums[1]);
    if (sums[2] > 0) metrics_set(out, "val_bpb", sums[0] / (log(2.0) * sums[2]));
}

static void gpt_finish(void *js, trainer *t, metrics *summary) {
    (void)js;
    double val = 0, bpb = 0;
    if (metrics_get(summary, "val_loss", &val) && metrics_get(summary, "val_bpb", &bpb))
        trainer_log(t, "final val loss %.4f (perplexity %.2f, %.4f bits per byte)\n", val, exp(val), bpb);
}

static void gpt_destroy(void *js) {
    gpt_run *r = js;
    gpt_free(&r->g);
    if (r->train) token_shard_close(r->train);
    if (r->val) token_shard_close(r->val);
    tokenizer_free(r->tok);
    free(r->window);
    free(r->inputs);
    free(r->targets);
    free(r->losses);
    free(r);
}

gpt *gpt_of(void *js) { return &((gpt_run *)js)->g; }

const job gpt_job = {
    .name = "gpt",
    .description = "GPT-2 style language-model pretraining on a token file, data-parallel.",
    .keys = gpt_keys,
    .unit = "tokens",
    .defaults = gpt_defaults,
    .create = gpt_create,
    .init_params = gpt_init,
    .steps_per_epoch = gpt_steps_per_epoch,
    .start_epoch = gpt_start_epoch,
    .forward_backward = gpt_forward_backward,
    .eval = gpt_eval,
    .finish = gpt_finish,
    .destroy = gpt_destroy,
    .save_state = NULL, /* a step's windows depend only on the step */
    .load_state = NULL,
    .sample_main = gpt_sample_main,
    .eval_main = gpt_eval_main,
};
