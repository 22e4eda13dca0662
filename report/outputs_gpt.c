/* outputs_gpt.c: a GPT run's real output (a text sample from its checkpoint, with the prompt
 * and seed) and its predictability (the same prompt under several seeds, one seed twice),
 * through `dtrain sample gpt`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, k;
    char *buf = xmalloc(cap);
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += k) + 1 == cap) buf = xrealloc(buf, cap *= 2);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* dtrain sample gpt into DIR/work/NAME-seedS.txt; the text, or NULL after a one-line message */
static char *sample(const run_files *r, const report_opts *opt, const char *work, long seed, int tokens,
                    const char *tag) {
    char path[2 * REPORT_PATH], seed_s[32], tok_s[32], why[512];
    snprintf(path, sizeof path, "%s/%s-%s%ld.txt", work, r->name, tag, seed);
    snprintf(seed_s, sizeof seed_s, "%ld", seed);
    snprintf(tok_s, sizeof tok_s, "%d", tokens);
    char *args[] = {"dtrain", "sample", "gpt", "--ckpt", (char *)r->ckpt, "--prompt", (char *)opt->prompt,
                    "--tokens", tok_s, "--seed", seed_s, NULL};
    if (run_dtrain(args, path, why, sizeof why) != 0) {
        fprintf(stderr, "dtrain report: %s: dtrain sample gpt failed: %s\n", r->dir, why);
        return NULL;
    }
    return slurp(path);
}

void outputs_gpt(const run_files *r, run_outputs *o, const report_opts *opt, const char *work) {
    snprintf(o->prompt, sizeof o->prompt, "%s", opt->prompt);
    o->sample_seed = 1;
    o->repeat_same = -1;
    o->sample_text = sample(r, opt, work, o->sample_seed, opt->tokens, "sample-seed");
    if (!o->sample_text) return;
    /* predictability: shorter texts, seeds 1..N, and seed 1 once more */
    int n = opt->seeds, tokens = opt->tokens < 100 ? opt->tokens : 100;
    char **texts = xcalloc((size_t)n + 1, sizeof *texts);
    int ok = 1;
    for (int i = 0; i <= n && ok; i++) ok = (texts[i] = sample(r, opt, work, i < n ? i + 1 : 1, tokens,
                                                               i < n ? "seed" : "again-seed")) != NULL;
    if (ok) {
        o->gen_seeds = n;
        o->gen_distinct = 0;
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = strcmp(texts[i], texts[j]) == 0;
            o->gen_distinct += !seen;
        }
        o->repeat_same = strcmp(texts[0], texts[n]) == 0;
    }
    for (int i = 0; i <= n; i++) free(texts[i]);
    free(texts);
}
