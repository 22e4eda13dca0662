/* fuzz_config: the config parser (core/config.c) over the real key tables (the trainer's and
 * one job's, as `dtrain JOB` declares them). The first byte picks the job; the rest is a
 * config file, read both as a file (config_load_file, --config FILE) and as text
 * (config_apply_text: a job's defaults, a checkpoint's stored config). Every value it takes
 * must read back through the typed getters, and the config must print and reparse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/classify.h"
#include "config.h"
#include "diffusion/diffusion.h"
#include "fuzz_util.h"
#include "gpt/gpt.h"
#include "trainer.h"

static void declare(config *c, const job *j) {
    char err[1024];
    memset(c, 0, sizeof *c);
    if (config_declare(c, trainer_keys, err, sizeof err) != 0 || config_declare(c, j->keys, err, sizeof err) != 0)
        abort();
}

/* every value taken reads back whole as its type says (the getters trust config_set) */
static void read_back(const config *c) {
    for (int i = 0; i < c->n; i++) {
        const cfg_spec *s = c->spec[i];
        const char *v = config_str(c, s->key);
        char *end = NULL;
        if (s->type == CFG_INT) (void)strtol(v, &end, 10);
        else if (s->type == CFG_FLOAT) (void)strtod(v, &end);
        if (end && (end == v || *end)) {
            fprintf(stderr, "fuzz_config: %s = '%s' was taken but is not a whole number\n", s->key, v);
            abort();
        }
    }
}

/* the printed config parses back to itself */
static void round_trip(const config *c, const job *j) {
    char *text = config_to_string(c), err[1024];
    config again;
    declare(&again, j);
    if (config_apply_text(&again, text, "file", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_config: the printed config does not reparse: %s\n", err);
        abort();
    }
    char *text2 = config_to_string(&again);
    if (strcmp(text, text2) != 0) {
        fprintf(stderr, "fuzz_config: the config changed on reparsing\n");
        abort();
    }
    free(text);
    free(text2);
    config_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const job *const jobs[] = {&classify_job, &gpt_job, &diffusion_job};
    fz_in in = {data, size};
    const job *j = jobs[fz_pick(&in, 3)];
    char err[1024];

    const char *path = fz_path("input.cfg");
    fz_write_file(path, in.p, in.n);
    config c;
    declare(&c, j);
    if (config_load_file(&c, path, err, sizeof err) == 0) {
        read_back(&c);
        round_trip(&c, j);
    }
    config_free(&c);

    char *text = malloc(in.n + 1);
    memcpy(text, in.p, in.n);
    text[in.n] = '\0';
    declare(&c, j);
    if (config_apply_text(&c, text, "checkpoint", err, sizeof err) == 0) {
        read_back(&c);
        round_trip(&c, j);
    }
    config_free(&c);
    free(text);
    return 0;
}
