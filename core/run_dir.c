/* run_dir.c: the run directory OUT: config.txt (the resolved config), metrics.jsonl (one
 * line per logged step, evaluation or epoch), summary.json (only a finished run writes it),
 * and the checks that keep two runs from mixing in one directory. Rank 0 writes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_state.h"
#include "util.h"

/* On resume, metrics.jsonl keeps only the lines up to the checkpoint's step: the lines a
 * killed run wrote after it are written again, identically, by the resumed run. */
static void trim_metrics(const char *path, long max_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *kept = NULL, line[8192];
    size_t len = 0;
    FILE *out = open_memstream(&kept, &len);
    while (fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\": ");
        if (s && atol(s + 8) <= max_step) fputs(line, out);
    }
    fclose(f);
    fclose(out);
    char err[256];
    if (write_file_atomic(path, kept, len, err, sizeof err) != 0) fprintf(stderr, "dtrain: %s\n", err);
    free(kept);
}

/* Whether checkpoints can be written to DIR: made if missing, then a file created and
 * removed in it. Checked at the start, so that a wrong --ckpt_dir stops the run before its
 * first hour of training rather than at its first checkpoint. */
static int check_ckpt_dir(const char *dir) {
    char err[1024], probe[1200];
    if (mkdir_p(dir, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: %s\n", err);
        return -1;
    }
    snprintf(probe, sizeof probe, "%s/.dtrain-probe.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "dtrain: %s: cannot write checkpoints there: %s\n", dir, strerror(errno));
        return -1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

int run_dir_open(trainer *t, long resumed_step) {
    int ok = 1;
    if (t->rank == 0) {
        char err[1024], path[1100];
        if (mkdir_p(t->out_dir, err, sizeof err) != 0) {
            fprintf(stderr, "dtrain: %s\n", err);
            ok = 0;
        } else if (check_ckpt_dir(t->ckpt_dir) != 0) {
            ok = 0;
        } else {
            char *text = config_to_string(&t->cfg);
            snprintf(path, sizeof path, "%s/config.txt", t->out_dir);
            if (write_file_atomic(path, text, strlen(text), err, sizeof err) != 0) {
                fprintf(stderr, "dtrain: %s\n", err);
                ok = 0;
            }
            free(text);
            snprintf(path, sizeof path, "%s/metrics.jsonl", t->out_dir);
            if (resumed_step >= 0) trim_metrics(path, resumed_step);
            if (ok && !(t->metrics_file = fopen(path, resumed_step >= 0 ? "a" : "w"))) {
                fprintf(stderr, "dtrain: %s: cannot create\n", path);
                ok = 0;
            }
        }
    }
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    return ok ? 0 : EXIT_RUNTIME;
}

void run_dir_write_metrics(trainer *t, const metrics *m) {
    t->last = *m;
    if (!t->metrics_file) return;
    metrics_write_json(m, t->metrics_file);
    fputc('\n', t->metrics_file);
    fflush(t->metrics_file);
}

/* A fresh start (resume = none) into a run directory that already holds a run would
 * overwrite its metrics and mix the two runs' checkpoints: pruning would keep the older
 * run's higher steps and delete the new run's, and a later `--resume auto` would continue
 * the wrong run. So it stops before touching anything and says how to go on. */
int run_dir_check_fresh_start(trainer *t) {
    if (strcmp(config_str(&t->cfg, "resume"), "none") != 0) return 0;
    int rc = 0;
    if (t->rank == 0) {
        char *cands[1], metrics[1100];
        int n = ckpt_candidates(t->ckpt_dir, cands, 1);
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", t->out_dir);
        int has_metrics = access(metrics, F_OK) == 0;
        if (n > 0) {
            fprintf(stderr, "dtrain: %s already holds a run (%s): continue it with --resume auto, or give "
                    "another --out; a fresh start never overwrites a run\n", t->out_dir, cands[0]);
            rc = EXIT_USAGE;
        } else if (has_metrics) {
            fprintf(stderr, "dtrain: %s already holds a run (%s) but no checkpoint to continue it from: give "
                    "another --out, or remove it to start over; a fresh start never overwrites a run\n",
                    t->out_dir, metrics);
            rc = EXIT_USAGE;
        }
        if (n > 0) free(cands[0]);
    }
    comm_bcast(t->comm, &rc, sizeof rc, 0);
    return rc;
}

int run_dir_write_summary(trainer *t, const clock_state *cs) {
    const job *j = t->job;
    for (int i = 0; i < t->last.n; i++) {
        const metric_kv *kv = &t->last.kv[i];
        if (kv->is_str) metrics_set_str(&t->summary, kv->key, kv->str);
        else metrics_set(&t->summary, kv->key, kv->num);
    }
    metrics_set_str(&t->summary, "job", j->name);
    /* epochs trained, with the fraction of a last epoch that max_steps cut short */
    double part = t->epoch_steps > 0 ? (double)t->step_in_epoch / (double)t->epoch_steps : 0.0;
    metrics_set(&t->summary, "epochs", (double)t->epoch + part);
    metrics_set(&t->summary, "steps", (double)t->step);
    metrics_set(&t->summary, cs->per_s, cs->train_time > 0 ? cs->items / cs->train_time : 0);
    metrics_set(&t->summary, "params", (double)t->model.nparams);
    metrics_set(&t->summary, "world_size", (double)t->world);
    metrics_set(&t->summary, "threads_per_rank", (double)t->threads);
    metrics_set(&t->summary, "train_time_s", cs->train_time);
    metrics_set(&t->summary, "wall_time_s", now_sec() - cs->t0);
    j->finish(t->js, t, &t->summary);
    if (t->rank != 0) return 0;
    char path[1100], err[1200];
    snprintf(path, sizeof path, "%s/summary.json", t->out_dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    metrics_write_json(&t->summary, f);
    fputc('\n', f);
    fclose(f);
    int rc = write_file_atomic(path, buf, len, err, sizeof err);
    if (rc != 0) fprintf(stderr, "dtrain: %s\n", err);
    free(buf);
    return rc;
}

/* Whether OUT holds the summary.json that only a finished run writes (collective). */
int run_dir_complete(trainer *t) {
    int done = 0;
    if (t->rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/summary.json", t->out_dir);
        done = access(path, F_OK) == 0;
    }
    comm_bcast(t->comm, &done, sizeof done, 0);
    return done;
}
