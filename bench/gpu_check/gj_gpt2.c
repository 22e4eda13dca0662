/* gj_gpt2.c: GPT-2 124M's shapes on the backend in use: forward, backward, clipping and
 * AdamW, with memory, time per phase and per op, tokens/s and achieved TFLOP/s.
 *
 * The model is jobs/gpt/model.c itself (12 layers, 12 heads, 768 channels, biases, V 50257
 * padded to 50304, T 1024), batch 16, random tokens (the loss of an untrained model is then
 * about ln V, which is checked). Times are host clocks around kernels_synchronize: every
 * op runs on one stream, so a phase's time is the device's time for it plus one
 * synchronisation (tens of microseconds against tens of milliseconds).
 *
 * Per op: after the timed steps, each op of a step is run again alone on block 0's
 * buffers, repeated until it has taken ~30 ms, and multiplied by its calls per step. The
 * sum of that column against the measured forward + backward says what the table misses.
 *
 * FLOPs of a step: 6 P (B T) + 12 L C T (B T): P = the parameters (without the padded rows
 * of wte, the tied head counted once) for the matrix products of forward (2 P per token)
 * and backward (4 P), plus attention's two T x T products per layer counted over the full
 * square (forward 4 C T per token per layer, backward twice that), as PaLM and llm.c count
 * them. LayerNorm, GELU, softmax and the optimizer are not counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt/model.h"
#include "gpu_jobs.h"
#include "kernels.h"
#include "optim.h"
#include "rng.h"
#include "util.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

/* "1.234 GiB" or "12.3 MiB" */
static const char *bytes_str(double b, char *buf, size_t len) {
    if (b >= 0.5 * GIB) snprintf(buf, len, "%.3f GiB", b / GIB);
    else snprintf(buf, len, "%.1f MiB", b / (1024.0 * 1024.0));
    return buf;
}

typedef enum {
    OP_EMBED_F, OP_LN_F, OP_QKV_F, OP_ATT_F, OP_APROJ_F, OP_RES_F, OP_FC_F, OP_GELU_F,
    OP_MPROJ_F, OP_HEAD_F, OP_XENT_F,
    OP_XENT_B, OP_HEAD_B, OP_LN_B, OP_MPROJ_B, OP_GELU_B, OP_FC_B, OP_APROJ_B, OP_ATT_B,
    OP_QKV_B, OP_ZERO, OP_EMBED_B, OP_CLIP, OP_ADAMW, OP_COUNT
} op_id;

static const char *op_name[OP_COUNT] = {
    "embedding_forward", "layernorm_forward", "linear_forward qkv", "attention_forward",
    "linear_forward attn_proj", "residual_forward", "linear_forward fc", "gelu_forward",
    "linear_forward mlp_proj", "linear_forward head", "softmax_xent_forward",
    "softmax_xent_backward", "linear_backward head", "layernorm_backward",
    "linear_backward mlp_proj", "gelu_backward", "linear_backward fc",
    "linear_backward attn_proj", "attention_backward", "linear_backward qkv",
    "kernels_zero grad buffers", "embedding_backward", "clip_grad_norm",
    "adamw step"};

typedef struct bench {
    gpt g;
    model m;
    optimizer o;
    int B, T, N, C, L, V, NH;
} bench;

static const float *P(const bench *b, int i) { return i < 0 ? NULL : model_param(&b->m, i); }
static float *G(const bench *b, int i) { return i < 0 ? NULL : model_grad(&b->m, i); }

/* Calls per step and FLOPs per call (matrix products only; 0 elsewhere). */
static void op_shape(const bench *b, op_id op, int *calls, double *flops) {
    double N = b->N, C = b->C, V = b->V, T = b->T, Bt = b->B;
    double att = 4.0 * Bt * T * T * C; /* q k^T and att v, the full square */
    *flops = 0;
    switch (op) {
    case OP_LN_F: case OP_LN_B: *calls = 2 * b->L + 1; break;
    case OP_RES_F: *calls = 2 * b->L; break;
    case OP_QKV_F: *calls = b->L, *flops = 2 * N * C * 3 * C; break;
    case OP_APROJ_F: *calls = b->L, *flops = 2 * N * C * C; break;
    case OP_FC_F: case OP_MPROJ_F: *calls = b->L, *flops = 2 * N * C * 4 * C; break;
    case OP_QKV_B: *calls = b->L, *flops = 4 * N * C * 3 * C; break;
    case OP_APROJ_B: *calls = b->L, *flops = 4 * N * C * C; break;
    case OP_FC_B: case OP_MPROJ_B: *calls = b->L, *flops = 4 * N * C * 4 * C; break;
    case OP_ATT_F: *calls = b->L, *flops = att; break;
    case OP_ATT_B: *calls = b->L, *flops = 2 * att; break;
    case OP_HEAD_F: *calls = 1, *flops = 2 * N * C * V; break;
    case OP_HEAD_B: *calls = 1, *flops = 4 * N * C * V; break;
    case OP_GELU_F: case OP_GELU_B: *calls = b->L; break;
    case OP_ZERO: *calls = 1; break;  /* every buffer a step zeroes, as one entry */
    default: *calls = 1; break;
    }
}

/* one call of `op` on block 0's buffers (OP_ZERO: every zeroing of a step) */
static void op_run(bench *b, op_id op) {
    gpt *g = &b->g;
    const gpt_block *k = &g->blocks[0];
    gpt_block_acts *a = &g->acts[0];
    int N = b->N, C = b->C, V = b->V;
    size_t NC = (size_t)N * C;
    switch (op) {
    case OP_EMBED_F: embedding_forward(g->x0, g->tokens, P(b, g->wte), P(b, g->wpe), b->B, b->T, C); break;
    case OP_LN_F: layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, g->x0, P(b, k->ln1_w), P(b, k->ln1_b), N, C); break;
    case OP_QKV_F: linear_forward(a->qkv, a->ln1, P(b, k->qkv_w), P(b, k->qkv_b), N, C, 3 * C); break;
    case OP_ATT_F: attention_forward(a->atty, a->att, a->qkv, b->B, b->T, C, b->NH); break;
    case OP_APROJ_F: linear_forward(a->res_mid, a->atty, P(b, k->attn_proj_w), P(b, k->attn_proj_b), N, C, C); break;
    case OP_RES_F: residual_forward(a->res_mid, a->res_mid, g->x0, NC); break;
    case OP_FC_F: linear_forward(a->fch, a->ln2, P(b, k->fc_w), P(b, k->fc_b), N, C, 4 * C); break;
    case OP_GELU_F: gelu_forward(a->fch_gelu, a->fch, 4 * NC); break;
    case OP_MPROJ_F: linear_forward(a->res_out, a->fch_gelu, P(b, k->mlp_proj_w), P(b, k->mlp_proj_b), N, 4 * C, C); break;
    case OP_HEAD_F: linear_forward(g->logits, g->lnf, P(b, g->wte), NULL, N, C, V); break;
    case OP_XENT_F: softmax_xent_forward(g->probs, g->losses, g->logits, g->targets, N, V); break;
    case OP_XENT_B: softmax_xent_backward(g->logits, g->probs, g->targets, N, V, 1.0f / (float)N); break;
    case OP_HEAD_B: linear_backward(g->dln, G(b, g->wte), NULL, g->logits, g->lnf, P(b, g->wte), N, C, V); break;
    case OP_LN_B: layernorm_backward(g->dres, G(b, k->ln2_w), G(b, k->ln2_b), g->dln, a->res_mid, P(b, k->ln2_w), a->ln2_mean, a->ln2_rstd, N, C); break;
    case OP_MPROJ_B: linear_backward(g->dfch_gelu, G(b, k->mlp_proj_w), G(b, k->mlp_proj_b), g->dres, a->fch_gelu, P(b, k->mlp_proj_w), N, 4 * C, C); break;
    case OP_GELU_B: gelu_backward(g->dfch, g->dfch_gelu, a->fch, 4 * NC); break;
    case OP_FC_B: linear_backward(g->dln, G(b, k->fc_w), G(b, k->fc_b), g->dfch, a->ln2, P(b, k->fc_w), N, C, 4 * C); break;
    case OP_APROJ_B: linear_backward(g->datty, G(b, k->attn_proj_w), G(b, k->attn_proj_b), g->dres, a->atty, P(b, k->attn_proj_w), N, C, C); break;
    case OP_ATT_B: attention_backward(g->dqkv, g->datty, a->qkv, a->att, g->mem.scratch, b->B, b->T, C, b->NH); break;
    case OP_QKV_B: linear_backward(g->dln, G(b, k->qkv_w), G(b, k->qkv_b), g->dqkv, a->ln1, P(b, k->qkv_w), N, C, 3 * C); break;
    case OP_ZERO: /* gpt_backward's zeroings: dlogits, dln, dres once; six per block */
        kernels_zero(g->logits, (size_t)N * V * sizeof(float));
        kernels_zero(g->dln, NC * sizeof(float));
        kernels_zero(g->dres, NC * sizeof(float));
        for (int l = 0; l < b->L; l++) {
            kernels_zero(g->dfch_gelu, 4 * NC * sizeof(float));
            kernels_zero(g->dfch, 4 * NC * sizeof(float));
            kernels_zero(g->dln, NC * sizeof(float));
            kernels_zero(g->datty, NC * sizeof(float));
            kernels_zero(g->dqkv, 3 * NC * sizeof(float));
            kernels_zero(g->dln, NC * sizeof(float));
        }
        break;
    case OP_EMBED_B: embedding_backward(G(b, g->wte), G(b, g->wpe), g->dres, g->tokens, b->B, b->T, C); break;
    case OP_CLIP: clip_grad_norm(&b->m, 1e30); break; /* the norm without scaling */
    case OP_ADAMW: optim_step(&b->o, &b->m, 1e-12f); break;
    case OP_COUNT: break;
    }
}

/* seconds per call of `op`, repeated until ~30 ms (once with tiny shapes) */
static double op_time(bench *b, op_id op, int tiny) {
    op_run(b, op); /* warm-up */
    kernels_synchronize();
    double t0 = now_sec();
    op_run(b, op);
    kernels_synchronize();
    double one = now_sec() - t0;
    int reps = tiny ? 1 : (int)fmin(50, fmax(1, ceil(0.03 / fmax(one, 1e-6))));
    if (reps == 1) return one;
    t0 = now_sec();
    for (int r = 0; r < reps; r++) op_run(b, op);
    kernels_synchronize();
    return (now_sec() - t0) / reps;
}

static void per_op_table(bench *b, int tiny, double fwd_bwd_s) {
    printf("per op (block 0's buffers, each op alone; ms per step = ms per call x calls):\n");
    printf("  %-26s %10s %6s %10s %6s %9s\n", "op", "ms/call", "calls", "ms/step", "share", "TFLOP/s");
    double total = 0;
    double ms[OP_COUNT];
    for (int op = 0; op < OP_COUNT; op++) {
        int calls;
        double flops;
        op_shape(b, (op_id)op, &calls, &flops);
        ms[op] = calls ? 1e3 * op_time(b, (op_id)op, tiny) : 0;
        if (op != OP_CLIP && op != OP_ADAMW) total += ms[op] * calls;
    }
    for (int op = 0; op < OP_COUNT; op++) {
        int calls;
        double flops;
        op_shape(b, (op_id)op, &calls, &flops);
        if (!calls) continue;
        char rate[32] = "";
        if (flops > 0 && ms[op] > 0) snprintf(rate, sizeof rate, "%9.2f", flops / (ms[op] * 1e-3) / 1e12);
        printf("  %-26s %10.3f %6d %10.2f %5.1f%% %9s\n", op_name[op], ms[op], calls, ms[op] * calls,
               op == OP_CLIP || op == OP_ADAMW ? 0.0 : 100.0 * ms[op] * calls / total, rate);
    }
    printf("  sum of the forward and backward ops: %.2f ms per step; measured forward + backward: %.2f ms "
           "(%+.1f%%)\n", total, 1e3 * fwd_bwd_s, 100.0 * (1e3 * fwd_bwd_s - total) / total);
}

/* Floats of gpt_alloc_acts's arena for B x T (jobs/gpt/model.c's declare_acts, without
 * the 16-float alignment of each tensor): to pick a batch that fits before allocating. */
static double act_floats(const gpt_config *c, int B, int T) {
    double N = (double)B * T, C = c->n_embd, L = c->n_layer;
    double block = 16 * N * C + 4 * N + (double)B * c->n_head * T * T;
    return N * C + L * block + N * C + 2 * N + 2 * N * c->vocab_size + N + 14 * N * C + 2 * N +
           (double)attention_scratch_floats(B, T, c->n_embd, c->n_head);
}

int gj_gpt2(const gj_opts *o) {
    bench b;
    memset(&b, 0, sizeof b);
    gpt_config cfg = o->tiny ? (gpt_config){2, 2, 32, 32, 100, 0, 1} : (gpt_config){12, 12, 768, 1024, 50257, 0, 1};
    cfg.padded_vocab = gpt_pad_vocab(cfg.vocab_size, 64);
    b.B = o->batch ? o->batch : o->tiny ? 2 : 16;
    b.T = cfg.block_size;
    /* the batch asked for, halved until parameters, gradients, Adam and activations take at
     * most 90% of the free device memory (e.g. batch 8 on a 40 GB A100) */
    double free0 = gj_device_free_bytes(), fixed = 4.0 * sizeof(float) * (double)gpt_num_params(&cfg, 1);
    while (free0 > 0 && b.B > 1 && fixed + sizeof(float) * act_floats(&cfg, b.B, b.T) > 0.9 * free0) {
        printf("batch %d needs %.1f GiB, more than 90%% of the %.1f GiB free: batch %d\n", b.B,
               (fixed + sizeof(float) * act_floats(&cfg, b.B, b.T)) / GIB, free0 / GIB, b.B / 2);
        b.B /= 2;
    }
    b.N = b.B * b.T, b.C = cfg.n_embd, b.L = cfg.n_layer, b.V = cfg.vocab_size, b.NH = cfg.n_head;
    int steps = o->steps ? o->steps : o->tiny ? 3 : 6;
    double used0 = gj_device_used_bytes();
    gpt_build(&b.g, &b.m, &cfg);
    model_alloc(&b.m);
    rng r;
    rng_seed(&r, 124, 0);
    gpt_init_params(&b.g, &b.m, &r);
    gpt_alloc_acts(&b.g, b.B, b.T);
    optim_init(&b.o, "adamw", &b.m, 0.9f, 0.95f, 1e-8f, 0.1f, 0.0f);
    size_t P = gpt_num_params(&cfg, 0);
    printf("GPT-2 shapes: %d layers, %d heads, C %d, V %d (wte %d rows), T %d, batch %d: %zu parameters, "
           "on %s, %s\n", cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.padded_vocab, b.T, b.B, P,
           gj_device_name(), o->tf32 ? "TF32 GEMMs" : "fp32 GEMMs");

    /* random tokens: an untrained model's loss is then about ln V */
    int32_t *tok = xmalloc((size_t)b.N * sizeof *tok), *tgt = xmalloc((size_t)b.N * sizeof *tgt);
    for (int i = 0; i < b.N; i++) {
        tok[i] = (int32_t)rng_below(&r, (uint64_t)b.V);
        tgt[i] = (int32_t)rng_below(&r, (uint64_t)b.V);
    }
    enum { PH_ZERO, PH_FWD, PH_BWD, PH_CLIP, PH_OPT, PH_N };
    static const char *ph_name[PH_N] = {"zero grads", "forward", "backward", "clip", "adamw"};
    double sum[PH_N] = {0}, first = 0;
    int bad = 0, nonfinite = 0;
    float loss0 = 0, loss = 0;
    for (int s = 0; s < steps; s++) {
        double t[PH_N + 1];
        kernels_synchronize();
        t[0] = now_sec();
        model_zero_grads(&b.m);
        kernels_synchronize();
        t[1] = now_sec();
        loss = gpt_forward(&b.g, &b.m, tok, tgt, b.B, b.T); /* returns the loss: synchronised */
        t[2] = now_sec();
        gpt_backward(&b.g, &b.m, 1.0f / (float)b.N);
        kernels_synchronize();
        t[3] = now_sec();
        clip_grad_norm(&b.m, 1.0);
        kernels_synchronize();
        t[4] = now_sec();
        optim_step(&b.o, &b.m, 6e-4f);
        kernels_synchronize();
        t[5] = now_sec();
        printf("  step %d: loss %.4f, %.1f ms%s\n", s + 1, loss, 1e3 * (t[5] - t[0]),
               s == 0 ? " (warm-up, not counted)" : "");
        if (!isfinite(loss)) nonfinite++;
        if (s == 0) loss0 = loss, first = t[5] - t[0];
        else for (int p = 0; p < PH_N; p++) sum[p] += t[p + 1] - t[p];
    }
    double used1 = gj_device_used_bytes();
    int n = steps - 1;
    double step_s = 0;
    for (int p = 0; p < PH_N; p++) step_s += sum[p] / n;
    printf("time per step (mean of steps 2-%d):", steps);
    for (int p = 0; p < PH_N; p++) printf(" %s %.2f ms;", ph_name[p], 1e3 * sum[p] / n);
    printf(" total %.2f ms (first step %.1f ms)\n", 1e3 * step_s, 1e3 * first);

    double tokens = (double)b.N;
    double flops = 6.0 * (double)P * tokens + 12.0 * b.L * (double)b.C * b.T * tokens;
    double tflops = flops / step_s / 1e12;
    printf("tokens/s: %.0f (%d x %d tokens per step)\n", tokens / step_s, b.B, b.T);
    printf("FLOPs per step: 6 P BT + 12 L C T BT = 6 x %zu x %.0f + 12 x %d x %d x %d x %.0f = %.4g\n", P, tokens,
           b.L, b.C, b.T, tokens, flops);
    printf("achieved: %.3g TFLOP/s", tflops);
    if (o->cublas_tflops > 0)
        printf(" = %.1f%% of cuBLAS's measured %s matmul rate on this GPU (%.2f TFLOP/s, gpu_matmul_rate)",
               100.0 * tflops / o->cublas_tflops, o->tf32 ? "TF32" : "fp32", o->cublas_tflops);
    printf("\n");

    size_t f = sizeof(float);
    double arena = (double)b.m.nfloats * f, acts = (double)b.g.mem.nfloats * f;
    char s1[32], s2[32], s3[32];
    if (fabs(acts / sizeof(float) - act_floats(&cfg, b.B, b.T)) > 0.01 * acts / sizeof(float))
        printf("note: the activation estimate (%.0f floats) is off by more than 1%% from the arena (%.0f)\n",
               act_floats(&cfg, b.B, b.T), acts / sizeof(float));
    printf("memory: parameters, gradients, Adam m and v 4 x %s; activations %s; allocated in all %s\n",
           bytes_str(arena, s1, sizeof s1), bytes_str(acts, s2, sizeof s2), bytes_str(4 * arena + acts, s3, sizeof s3));
    if (used1 >= 0)
        printf("device memory in use after the steps (cudaMemGetInfo; the peak, as nothing is allocated after "
               "set-up): %s, of which %s before the first allocation (the context)\n",
               bytes_str(used1, s1, sizeof s1), bytes_str(used0, s2, sizeof s2));

    per_op_table(&b, o->tiny, (sum[PH_FWD] + sum[PH_BWD] + sum[PH_ZERO]) / n);

    /* the untrained model predicts nearly uniformly over V: anything else is a wrong forward */
    double lnV = log((double)b.V);
    if (fabs(loss0 - lnV) > 0.5) {
        printf("FAIL gpt2: first loss %.4f, expected about ln V = %.4f\n", loss0, lnV);
        bad = 1;
    }
    if (nonfinite) {
        printf("FAIL gpt2: %d of the %d losses are not finite\n", nonfinite, steps);
        bad = 1;
    }
    free(tok);
    free(tgt);
    if (!bad) printf("ok   gpt2: %d steps, first loss %.4f (ln V = %.4f), every loss finite\n", steps, loss0, lnV);
    optim_free(&b.o);
    gpt_free(&b.g);
    model_free(&b.m);
    return bad;
}
