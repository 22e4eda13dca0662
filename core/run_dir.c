/* run_dir.c: the run directory OUT: config.txt (the resolved config), metrics.jsonl (one
 * line per logged step, evaluation or epoch), summary.json (only a finished run writes it),
 * and the checks that keep two runs from mixing in one directory. Rank 0 writes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_state.h"
#include "util.h"

/* On resume, metrics.jsonl keeps only the lines up to the checkpoint's step: the lines a
 * killed run wrote after it are written again, identically, by the resumed run. A last line
 * without its newline (a run killed inside a write) goes too. Anything but a regular file
 * (a device that never ends, a FIFO) is refused rather than read. 0, or -1 after printing. */
static int trim_metrics(const char *path, long max_step) {
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) return 0;
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "dtrain: %s: %s\n", path, f ? "not a regular file" : strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    char *kept = NULL, *line = NULL;
    size_t len = 0, cap = 0;
    ssize_t n;
    FILE *out = open_memstream(&kept, &len);
    while ((n = getline(&line, &cap, f)) > 0) {
        const char *s = strstr(line, "\"step\": ");
        if (line[n - 1] == '\n' && s && atol(s + 8) <= max_step) fwrite(line, 1, (size_t)n, out);
    }
    int bad = ferror(f), e = errno;
    free(line);
    fclose(f);
    fclose(out);
    char err[1200];
    int rc = 0;
    if (bad) {
        fprintf(stderr, "dtrain: %s: cannot read: %s\n", path, strerror(e));
        rc = -1;
    } else if (write_file_atomic(path, kept, len, err, sizeof err) != 0) {
        fprintf(stderr, "dtrain: %s\n", err);
        rc = -1;
    }
    free(kept);
    return rc;
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
    /* a file-size limit (ulimit -f) is then an error of the write that meets it (EFBIG),
     * reported like a full disk, rather than a signal that kills the run mid-line */
    signal(SIGXFSZ, SIG_IGN);
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
            if (ok && resumed_step >= 0 && trim_metrics(path, resumed_step) != 0) ok = 0;
            if (ok && !(t->metrics_file = fopen(path, resumed_step >= 0 ? "a" : "w"))) {
                fprintf(stderr, "dtrain: %s: cannot create: %s\n", path, strerror(errno));
                ok = 0;
            }
        }
    }
    comm_bcast(t->comm, &ok, sizeof ok, 0);
    return ok ? 0 : EXIT_RUNTIME;
}

/* One line per record, whole or not at all: formatted in memory, appended with one write,
 * and on a failed write (a full disk, an I/O error, a file-size limit) the file is cut back
 * to where the line began, so that no half line is left for the next one to splice onto;
 * the run then ends (EXIT_RUNTIME) naming the file and the error. stdio never holds any of
 * it, so closing the file later has nothing left to fail on. */
void run_dir_write_metrics(trainer *t, const metrics *m) {
    t->last = *m;
    if (!t->metrics_file) return;
    char *line = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&line, &len);
    metrics_write_json(m, mem);
    fputc('\n', mem);
    fclose(mem);
    int fd = fileno(t->metrics_file);
    off_t start = lseek(fd, 0, SEEK_END);
    size_t done = 0;
    int e = start < 0 ? errno : 0;
    while (!e && done < len) {
        ssize_t w = write(fd, line + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) e = w < 0 ? errno : EIO;
        else done += (size_t)w;
    }
    free(line);
    if (!e) return;
    if (start >= 0 && ftruncate(fd, start) != 0) { /* the half line stays: say so */
        trainer_fail(t, EXIT_RUNTIME, "%s/metrics.jsonl: cannot write: %s (and a partial line is left in it)",
                     t->out_dir, strerror(e));
    }
    trainer_fail(t, EXIT_RUNTIME, "%s/metrics.jsonl: cannot write: %s", t->out_dir, strerror(e));
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
    /* every metrics line on disk before the summary says the run is complete: an I/O error
     * that only the flush to disk finds is still this run's failure */
    if (t->metrics_file && fsync(fileno(t->metrics_file)) != 0) {
        fprintf(stderr, "dtrain: %s/metrics.jsonl: fsync: %s\n", t->out_dir, strerror(errno));
        return -1;
    }
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
