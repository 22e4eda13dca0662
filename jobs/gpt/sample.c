/* sample.c: text from a trained GPT, and its validation loss, from a checkpoint.
 *
 *   dtrain sample gpt --ckpt PATH [--prompt TEXT] [--tokens N] [--temperature T]
 *                     [--top-k K] [--seed S] [--key value ...]
 *   dtrain eval gpt --ckpt PATH [--key value ...]
 *
 * The model comes from the checkpoint's stored config (overridable, e.g. --data) through
 * trainer_load_for_inference. Generation runs the full forward over the last block_size
 * tokens for every new token: no key/value cache, which at the default context of 64 costs
 * less than the code it would take. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "kernels.h"
#include "tokens.h"
#include "trainer.h"
#include "util.h"

#define SAMPLE_STREAM 0x73616d706c65ull /* "sample" */

/* ---- choosing a token --------------------------------------------------------------- */

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* the k-th largest of x[V] (k < V); scratch holds V floats */
static float kth_largest(const float *x, int V, int k, float *scratch) {
    memcpy(scratch, x, sizeof *x * (size_t)V);
    qsort(scratch, (size_t)V, sizeof *scratch, desc);
    return scratch[k - 1];
}

int gpt_sample_token(const float *logits, int V, float temperature, int top_k, float *work,
                     rng *r) {
    if (temperature <= 0.0f || top_k == 1) return argmax(logits, V);
    /* logits below the k-th largest are out (ties with it stay in: a few more than k) */
    float cut = top_k > 0 && top_k < V ? kth_largest(logits, V, top_k, work) : -INFINITY;
    float max = logits[argmax(logits, V)];
    double sum = 0;
    for (int v = 0; v < V; v++) {
        work[v] = logits[v] >= cut ? expf((logits[v] - max) / temperature) : 0.0f;
        sum += work[v];
    }
    double u = (double)rng_uniform(r) * sum, acc = 0;
    int last = 0;
    for (int v = 0; v < V; v++) {
        if (work[v] == 0.0f) continue;
        acc += work[v];
        last = v;
        if (u < acc) return v;
    }
    return last; /* u landed in the rounding gap at the top of the sum */
}

/* ---- options ------------------------------------------------------------------------ */

typedef struct sample_opts {
    const char *ckpt, *prompt;
    long tokens;
    double temperature;
    long top_k;
    long seed;
} sample_opts;

static int parse_long(const char *opt, const char *s, long lo, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo) {
        fprintf(stderr, "dtrain sample: bad value '%s' for %s: expected an integer >= %ld\n", s, opt,
                lo);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v >= 0.0) || !isfinite(v)) {
        fprintf(stderr, "dtrain sample: bad value '%s' for %s: expected a number >= 0\n", s, opt);
        return -1;
    }
    *out = v;
    return 0;
}

/* Takes the sampler's own options out of argv; the rest (--key value pairs for the
 * config) is left in *rest, after rest[0] = argv[0]. Returns 0, or an exit code. */
static int parse_sample_opts(int argc, char **argv, sample_opts *o, char **rest, int *nrest,
                             int sampling) {
    *o = (sample_opts){NULL, "", 500, 0.8, 200, 0};
    const char *cmd = sampling ? "sample" : "eval";
    rest[0] = argv[0];
    *nrest = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int mine = strcmp(a, "--ckpt") == 0 ||
                   (sampling && (strcmp(a, "--prompt") == 0 || strcmp(a, "--tokens") == 0 ||
                                 strcmp(a, "--temperature") == 0 || strcmp(a, "--top-k") == 0 ||
                                 strcmp(a, "--seed") == 0));
        if (!mine) {
            rest[(*nrest)++] = argv[i];
            continue;
        }
        if (!v) {
            fprintf(stderr, "dtrain %s: %s needs a value\n", cmd, a);
            return EXIT_USAGE;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--ckpt") == 0) o->ckpt = v;
        else if (strcmp(a, "--prompt") == 0) o->prompt = v;
        else if (strcmp(a, "--tokens") == 0) bad = parse_long(a, v, 0, &o->tokens);
        else if (strcmp(a, "--temperature") == 0) bad = parse_double(a, v, &o->temperature);
        else if (strcmp(a, "--top-k") == 0) bad = parse_long(a, v, 0, &o->top_k);
        else bad = parse_long(a, v, 0, &o->seed);
        if (bad) return EXIT_USAGE;
    }
    if (!o->ckpt) {
        fprintf(stderr, "usage: dtrain %s gpt --ckpt PATH%s [--key value ...]\n", cmd,
                sampling ? " [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]"
                         : "");
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- generation --------------------------------------------------------------------- */

/* The prompt's ids in ctx (capacity cap); an empty prompt starts from the newline token if
 * the vocabulary has one, else from id 0. Returns the count, or -1 after printing why. */
static long encode_prompt(const tokenizer *tok, const char *prompt, int32_t *ctx, long cap) {
    char err[512];
    if (prompt[0]) {
        long n = tokenizer_encode(tok, prompt, ctx, cap, err, sizeof err);
        if (n < 0) fprintf(stderr, "dtrain sample: --prompt: %s\n", err);
        if (n == 0) fprintf(stderr, "dtrain sample: --prompt encodes to no tokens\n");
        return n > 0 ? n : -1;
    }
    if (tokenizer_encode(tok, "\n", ctx, cap, err, sizeof err) != 1) ctx[0] = 0;
    return 1;
}

static void print_token(const tokenizer *tok, int32_t id) {
    const char *bytes;
    int n = tokenizer_decode(tok, id, &bytes);
    fwrite(bytes, 1, (size_t)n, stdout);
}

/* Appends `count` sampled tokens to ctx[0..n), printing each as it comes. The model sees
 * the last block_size tokens. Returns 0, or the errno of a failed write to stdout (a full
 * disk, a closed pipe), which ends the generation: a sample cut short is no sample. */
static int generate(trainer *t, const tokenizer *tok, int32_t *ctx, long n, const sample_opts *o) {
    gpt *g = gpt_of(t->js);
    int T = g->cfg.block_size;
    /* ids the tokenizer cannot print (vocab_size beyond the data's) are never drawn */
    int V = g->cfg.vocab_size < tokenizer_vocab_size(tok) ? g->cfg.vocab_size
                                                         : tokenizer_vocab_size(tok);
    float *work = xmalloc(sizeof *work * (size_t)V), *logits = xmalloc(sizeof *logits * (size_t)V);
    rng r;
    rng_seed(&r, (uint64_t)o->seed, SAMPLE_STREAM);
    int e = 0;
    for (long i = 0; i < o->tokens && !e; i++, n++) {
        long len = n < T ? n : T;
        gpt_forward(g, &t->model, ctx + n - len, NULL, 1, (int)len);
        /* the first V logits of the one sequence: the draw happens on the host */
        kernels_to_host(logits, g->logits, sizeof *logits * (size_t)V);
        ctx[n] = gpt_sample_token(logits, V, (float)o->temperature, (int)o->top_k, work, &r);
        print_token(tok, ctx[n]);
        if (fflush(stdout) != 0 || ferror(stdout)) e = errno ? errno : EIO;
    }
    free(work);
    free(logits);
    return e;
}

/* The sample's last bytes reached stdout's file; else one line saying why (exit 1). */
static int stdout_ok(int e) {
    if (!e && (fflush(stdout) != 0 || ferror(stdout))) e = errno ? errno : EIO;
    if (!e) return EXIT_OK;
    fprintf(stderr, "dtrain: stdout: cannot write: %s\n", strerror(e));
    return EXIT_RUNTIME;
}

static int sample_with(trainer *t, const sample_opts *o) {
    char err[1024];
    const char *data = config_str(&t->cfg, "data");
    tokenizer *tok = tokenizer_load(data, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "dtrain sample: %s\n", err);
        return EXIT_USAGE;
    }
    long cap = (long)strlen(o->prompt) + 1 + o->tokens; /* ids <= UTF-8 bytes */
    int32_t *ctx = xmalloc(sizeof *ctx * (size_t)cap);
    long n = encode_prompt(tok, o->prompt, ctx, cap);
    int rc = EXIT_USAGE;
    if (n > 0) {
        errno = 0;
        fputs(o->prompt, stdout);
        int e = generate(t, tok, ctx, n, o);
        if (!e) fputc('\n', stdout);
        rc = stdout_ok(e);
    }
    free(ctx);
    tokenizer_free(tok);
    return rc;
}

int gpt_sample_main(int argc, char **argv) {
    sample_opts o;
    char **rest = xmalloc(sizeof *rest * (size_t)(argc + 3));
    int nrest, rc = parse_sample_opts(argc, argv, &o, rest, &nrest, 1);
    if (rc == 0) {
        /* generation feeds one sequence at a time: activations for batch 1 only */
        rest[nrest++] = "--batch_size";
        rest[nrest++] = "1";
        trainer t;
        rc = trainer_load_for_inference(&t, &gpt_job, o.ckpt, nrest, rest);
        if (rc == 0) rc = sample_with(&t, &o);
        trainer_teardown(&t);
    }
    free(rest);
    return rc;
}

int gpt_eval_main(int argc, char **argv) {
    sample_opts o;
    char **rest = xmalloc(sizeof *rest * (size_t)(argc + 1));
    int nrest, rc = parse_sample_opts(argc, argv, &o, rest, &nrest, 0);
    if (rc == 0) {
        trainer t;
        rc = trainer_load_for_inference(&t, &gpt_job, o.ckpt, nrest, rest);
        if (rc == 0) {
            metrics m = {0};
            gpt_job.eval(t.js, &t, &m);
            double val = 0, bpb = 0;
            metrics_get(&m, "val_loss", &val);
            metrics_get(&m, "val_bpb", &bpb);
            errno = 0;
            printf("step %ld | val_loss %.4f | perplexity %.2f | %.4f bits per byte\n", t.step, val, exp(val), bpb);
            rc = stdout_ok(0);
        }
        trainer_teardown(&t);
    }
    free(rest);
    return rc;
}
