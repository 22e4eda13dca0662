/* resume.c: resume policy: which checkpoint `--resume` means (a path, or with `auto` the
 * newest one that verifies), restoring a trainer from it, and a warning for each config
 * key that differs from the one the checkpoint was trained with. Also the trainer of the
 * inference tools, built from a checkpoint's config and parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "mem_limit.h"
#include "train_state.h"
#include "util.h"

/* Rank 0 picks the checkpoint: a given path, or with `auto` the newest one that opens and
 * verifies (warning about each one that does not). "" = start from scratch. */
static int choose_checkpoint(trainer *t, const char *resume, char *path, size_t len) {
    path[0] = '\0';
    char err[1024];
    if (strcmp(resume, "auto") != 0) {
        ckpt *c = ckpt_open(resume, err, sizeof err);
        if (!c) {
            fprintf(stderr, "dtrain: cannot resume: %s\n", err);
            return EXIT_USAGE;
        }
        ckpt_close(c);
        snprintf(path, len, "%s", resume);
        return 0;
    }
    char *cands[256];
    int n = ckpt_candidates(t->ckpt_dir, cands, 256), rc = 0;
    for (int i = 0; i < n; i++) {
        if (!path[0]) {
            ckpt *c = ckpt_open(cands[i], err, sizeof err);
            if (c) {
                ckpt_close(c);
                snprintf(path, len, "%s", cands[i]);
            } else {
                fprintf(stderr, "dtrain: warning: skipping checkpoint: %s\n", err);
            }
        }
        free(cands[i]);
    }
    if (n > 0 && !path[0]) {
        fprintf(stderr, "dtrain: cannot resume: none of the %d checkpoints in %s verifies\n", n, t->ckpt_dir);
        rc = EXIT_USAGE;
    }
    if (n == 0) trainer_log(t, "resume auto: no checkpoint in %s, starting from scratch\n", t->ckpt_dir);
    return rc;
}

/* Keys that may change on resume without changing what the run computes: where it writes,
 * what it reports and when, which checkpoint it resumes, how many threads share the work,
 * which device runs it (a cpu checkpoint resumes on cuda and back: the same model and
 * schedule, computed by other kernels, so equal to rounding rather than bit for bit). */
static int operational_key(const char *key) {
    static const char *const keys[] = {"out",           "ckpt_dir",  "resume",   "threads",
                                       "log_interval",  "ckpt_keep", "ckpt_interval",
                                       "eval_interval", "comm_timeout", "device", "gpu", "tf32", NULL};
    for (int i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0) return 1;
    return 0;
}

/* Equal as numbers where both are numbers (1e-3 and 0.001), else as text. */
static int same_value(const char *a, const char *b) {
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && *ea == '\0' && eb != b && *eb == '\0') return x == y;
    return strcmp(a, b) == 0;
}

/* whether a config text (`key = value` lines) sets key */
static int stored_has_key(const char *stored, const char *key) {
    size_t kl = strlen(key);
    for (const char *line = stored; *line;) {
        if (strncmp(line, key, kl) == 0 && strncmp(line + kl, " = ", 3) == 0) return 1;
        const char *end = strchr(line, '\n');
        if (!end) break;
        line = end + 1;
    }
    return 0;
}

/* Rank 0 warns, a line per key, where this run's config differs from the one stored in the
 * checkpoint it resumes (operational keys aside): such a run goes on, as asked, but will not
 * reproduce the uninterrupted run (a new epoch count, for one, reshapes the LR schedule).
 * Keys the stored config lacks are named as well. */
static void warn_config_changes(const trainer *t, const char *stored, const char *path) {
    if (t->rank != 0 || !stored) return;
    for (const char *line = stored; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *eq = memchr(line, '=', len);
        if (eq && eq > line + 1 && eq[-1] == ' ' && eq + 1 < line + len && eq[1] == ' ') {
            char key[128], val[1024];
            size_t kl = (size_t)(eq - 1 - line), vl = len - (size_t)(eq + 2 - line);
            if (kl < sizeof key && vl < sizeof val) {
                memcpy(key, line, kl), key[kl] = '\0';
                memcpy(val, eq + 2, vl), val[vl] = '\0';
                if (!operational_key(key) && config_has(&t->cfg, key) &&
                    !same_value(config_str(&t->cfg, key), val))
                    fprintf(stderr,
                            "dtrain: warning: resuming %s with %s = %s where it was trained with "
                            "%s; the result will differ from an uninterrupted run\n",
                            path, key, config_str(&t->cfg, key), val);
            }
        }
        line += len + (end ? 1 : 0);
    }
    /* keys the checkpoint's config does not name came with a newer dtrain; their defaults
     * may train differently from the code that wrote the checkpoint */
    for (int i = 0; i < t->cfg.n; i++) {
        const char *key = t->cfg.spec[i]->key;
        if (operational_key(key) || stored_has_key(stored, key)) continue;
        fprintf(stderr, "dtrain: warning: resuming %s, whose config has no key '%s' (written by an older "
                "dtrain?): it continues with %s = %s\n", path, key, key, t->cfg.value[i]);
    }
}

/* Every rank reads the checkpoint rank 0 chose: parameters, optimizer state, counters. */
static int load_checkpoint(trainer *t, const char *path) {
    char err[1024];
    /* every rank opens the same file and makes the same checks, in the same order: each is a
     * collective trainer_check (one line, from the lowest rank that failed) */
    ckpt *c = ckpt_open(path, err, sizeof err);
    trainer_check(t, !c, EXIT_USAGE, "cannot resume: %s", err);
    snprintf(t->resume_path, sizeof t->resume_path, "%s", path);
    const ckpt_meta *meta = ckpt_get_meta(c);
    trainer_check(t, strcmp(meta->job, t->job->name) != 0, EXIT_USAGE,
                  "cannot resume: %s was written by job '%s', not '%s'", path, meta->job, t->job->name);
    train_state_load(t, c, path);
    t->resume_job_state = t->step_in_epoch > 0 && t->job->load_state != NULL;
    t->resumed = 1;
    warn_config_changes(t, meta->config_text, path);
    ckpt_close(c);
    trainer_log(t, "resumed from %s: step %ld, epoch %ld, step %ld of the epoch (written by %d rank%s)\n", path,
                t->step, t->epoch + 1, t->step_in_epoch, t->resume_world, t->resume_world == 1 ? "" : "s");
    return 0;
}

/* Picks and loads the checkpoint that --resume asks for. Returns the resumed step, -1 for a
 * fresh start, or -2 - exit code on failure. */
long resume_maybe(trainer *t) {
    const char *resume = config_str(&t->cfg, "resume");
    if (strcmp(resume, "none") == 0) return -1;
    char path[4096];
    int rc = 0;
    if (t->rank == 0) rc = choose_checkpoint(t, resume, path, sizeof path);
    comm_bcast(t->comm, &rc, sizeof rc, 0);
    if (rc != 0) return -2 - rc;
    comm_bcast(t->comm, path, sizeof path, 0);
    if (!path[0]) return -1;
    load_checkpoint(t, path);
    return t->step;
}

int trainer_load_for_inference(trainer *t, const job *j, const char *ckpt_path, int argc,
                               char **argv) {
    memset(t, 0, sizeof *t);
    t->job = j;
    t->comm = comm_init(&argc, &argv);
    t->rank = comm_rank(t->comm);
    t->world = comm_world(t->comm);
    char err[1024];
    ckpt *c = ckpt_open(ckpt_path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "dtrain: %s\n", err);
        return EXIT_USAGE;
    }
    const ckpt_meta *meta = ckpt_get_meta(c);
    int rc = trainer_declare_keys(t);
    if (rc == 0 && strcmp(meta->job, j->name) != 0) {
        fprintf(stderr, "dtrain: %s was written by job '%s', not '%s'\n", ckpt_path, meta->job, j->name);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && config_apply_text(&t->cfg, meta->config_text, "checkpoint", err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: %s: stored config: %s\n", ckpt_path, err);
        rc = EXIT_USAGE;
    }
    if (rc == 0) rc = trainer_apply_cli(t, argc, argv);
    if (rc != 0) {
        ckpt_close(c);
        return rc;
    }
    t->threads = trainer_auto_threads(t->comm);
    kernels_set_threads(t->threads);
    t->grad_accum = 1;
    ckpt_close(c);
    /* the model is built from the checkpoint's config: sizes it asks for that this machine
     * cannot hold are that file's error (mem_limit.h) */
    char source[4200];
    snprintf(source, sizeof source, "%s: its stored config", ckpt_path);
    mem_limit_source(source);
    t->js = j->create(t);
    unsigned long long pbytes;
    int over = __builtin_mul_overflow((unsigned long long)t->model.nfloats, 2ull * sizeof(float), &pbytes);
    mem_limit_check(pbytes, over, "the parameters and their gradients");
    mem_limit_source(NULL);
    model_alloc(&t->model);
    model_upload(&t->model); /* the arena in the backend's memory, which the read fills */
    rc = trainer_read_group(t, ckpt_path, "params", t->model.params);
    return rc;
}
