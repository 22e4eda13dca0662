/* run_read.c: a run directory as the report sees it: config.txt, summary.json,
 * metrics.jsonl (read with jansson) and the checkpoint `latest` names. Read-only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "util.h"

void series_add(series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = xrealloc(s->x, (size_t)s->cap * sizeof *s->x);
        s->y = xrealloc(s->y, (size_t)s->cap * sizeof *s->y);
    }
    s->x[s->n] = x, s->y[s->n] = y, s->n++;
}

void series_free(series *s) {
    free(s->x), free(s->y);
    memset(s, 0, sizeof *s);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* config.txt: "key = value" lines into an object of strings; NULL when the file is absent */
static json_t *read_config(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    json_t *cfg = json_object();
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        char *k = line, *v = eq + 1, *e = eq;
        while (e > k && e[-1] == ' ') e--;
        *e = 0;
        while (*v == ' ') v++;
        if (*k) json_object_set_new(cfg, k, json_string(v));
    }
    fclose(f);
    return cfg;
}

/* the checkpoint `latest` names in the run's checkpoint directory, "" when none */
static void find_checkpoint(run_files *r) {
    const char *cd = run_cfg(r, "ckpt_dir");
    char dir[REPORT_PATH + 16], latest[REPORT_PATH + 32], name[512] = "";
    if (*cd) snprintf(dir, sizeof dir, "%s", cd);
    else snprintf(dir, sizeof dir, "%s/checkpoints", r->dir);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    FILE *f = fopen(latest, "r");
    r->ckpt[0] = 0;
    if (!f) return;
    if (fgets(name, sizeof name, f)) name[strcspn(name, "\r\n")] = 0;
    fclose(f);
    char path[2 * REPORT_PATH];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (*name && is_file(path) && strlen(path) < sizeof r->ckpt) snprintf(r->ckpt, sizeof r->ckpt, "%s", path);
}

static int get_num(json_t *o, const char *key, double *v) {
    json_t *j = json_object_get(o, key);
    if (!json_is_number(j)) return 0;
    *v = json_number_value(j);
    return 1;
}

/* one metrics.jsonl object into the curves; epoch lines go to the *_epoch series first */
typedef struct reader {
    series epoch_train, epoch_rate, epoch_time, step_time;
    double last_timed_step, t_steps, t_epochs;
} reader;

static void take_line(run_files *r, reader *rd, json_t *o) {
    double step, v, ms, rate;
    if (!get_num(o, "step", &step)) return;
    int has_rate = get_num(o, "images_per_s", &rate) || get_num(o, "tokens_per_s", &rate);
    if (get_num(o, "loss", &v)) { /* a step line */
        series_add(&r->train_loss, step, v);
        if (has_rate) series_add(&r->throughput, step, rate);
        if (get_num(o, "ms_per_step", &ms)) {
            rd->t_steps += ms / 1000 * (step - rd->last_timed_step);
            rd->last_timed_step = step;
            series_add(&rd->step_time, step, rd->t_steps);
        }
    } else if (get_num(o, "train_loss", &v)) { /* an epoch line */
        series_add(&rd->epoch_train, step, v);
        if (has_rate) series_add(&rd->epoch_rate, step, rate);
        if (get_num(o, "epoch_time_s", &v)) series_add(&rd->epoch_time, step, rd->t_epochs += v);
    }
    int has_eval = get_num(o, "val_loss", &v) || get_num(o, "test_loss", &v);
    /* the last evaluation is logged twice when a run ends on an evaluation step */
    if (has_eval && !(r->eval_loss.n && r->eval_loss.x[r->eval_loss.n - 1] == step)) {
        series_add(&r->eval_loss, step, v);
        if (get_num(o, "test_acc", &v)) series_add(&r->eval_acc, step, v);
    }
}

static void swap_series(series *a, series *b) {
    series t = *a;
    *a = *b, *b = t;
}

static int read_metrics(run_files *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    reader rd;
    memset(&rd, 0, sizeof rd);
    char *line = NULL;
    size_t cap = 0;
    int bad = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (json_is_object(o)) take_line(r, &rd, o);
        else if (line[len - 1] == '\n') bad++; /* an unfinished last line is a run still writing it */
        json_decref(o);
    }
    free(line);
    fclose(f);
    /* classify logs per epoch unless log_interval asks for step lines */
    if (r->train_loss.n == 0) swap_series(&r->train_loss, &rd.epoch_train);
    if (r->throughput.n == 0) swap_series(&r->throughput, &rd.epoch_rate);
    swap_series(&r->time_at, rd.step_time.n ? &rd.step_time : &rd.epoch_time);
    series_free(&rd.epoch_train), series_free(&rd.epoch_rate), series_free(&rd.epoch_time);
    series_free(&rd.step_time);
    if (bad) fprintf(stderr, "dtrain report: %s: %d line(s) that are not JSON objects skipped\n", path, bad);
    return 1;
}

static void guess_job(run_files *r) {
    json_t *j = r->summary ? json_object_get(r->summary, "job") : NULL;
    if (json_is_string(j)) snprintf(r->job, sizeof r->job, "%s", json_string_value(j));
    else if (*run_cfg(r, "n_layer")) snprintf(r->job, sizeof r->job, "gpt");
    else if (*run_cfg(r, "channel_mult")) snprintf(r->job, sizeof r->job, "diffusion");
    else if (*run_cfg(r, "model")) snprintf(r->job, sizeof r->job, "classify");
}

int run_read(run_files *r, const char *dir, char *why, size_t whylen) {
    memset(r, 0, sizeof *r);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len >= sizeof r->dir) return snprintf(why, whylen, "%s: path too long", dir), -1;
    memcpy(r->dir, dir, len);
    const char *base = strrchr(r->dir, '/');
    snprintf(r->name, sizeof r->name, "%.100s", base && base[1] ? base + 1 : r->dir);
    struct stat st;
    if (stat(r->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return snprintf(why, whylen, "%s: not a directory", r->dir), -1;
    char path[REPORT_PATH + 32];
    snprintf(path, sizeof path, "%s/config.txt", r->dir);
    r->config = read_config(path);
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    if (is_file(path)) {
        json_error_t e;
        r->summary = json_load_file(path, 0, &e);
        if (!json_is_object(r->summary)) {
            fprintf(stderr, "dtrain report: %s: line %d: %s (the run's final figures left out)\n", path, e.line,
                    e.text);
            json_decref(r->summary), r->summary = NULL;
        }
    }
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    int has_metrics = read_metrics(r, path);
    if (!r->config || !has_metrics) {
        snprintf(why, whylen, "%s: not a run directory (no %s)", dir, !r->config ? "config.txt" : "metrics.jsonl");
        run_free(r);
        return -1;
    }
    guess_job(r);
    if (!*r->job) {
        run_free(r);
        return snprintf(why, whylen, "%s/config.txt: no job's keys (model, n_layer or channel_mult)", dir), -1;
    }
    find_checkpoint(r);
    return 0;
}

void run_free(run_files *r) {
    json_decref(r->config), json_decref(r->summary);
    r->config = r->summary = NULL;
    series_free(&r->train_loss), series_free(&r->eval_loss), series_free(&r->eval_acc);
    series_free(&r->throughput), series_free(&r->time_at);
}

const char *run_cfg(const run_files *r, const char *key) {
    json_t *v = r->config ? json_object_get(r->config, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : "";
}

double run_num(const run_files *r, const char *key, int *found) {
    double v = 0;
    int ok = r->summary && get_num(r->summary, key, &v);
    if (found) *found = ok;
    return ok ? v : 0;
}

double run_time_at(const run_files *r, double step) {
    const series *s = &r->time_at;
    if (s->n == 0) return -1;
    double x0 = 0, y0 = 0;
    for (int i = 0; i < s->n; i++) {
        if (step <= s->x[i])
            return s->x[i] > x0 ? y0 + (s->y[i] - y0) * (step - x0) / (s->x[i] - x0) : s->y[i];
        x0 = s->x[i], y0 = s->y[i];
    }
    /* past the last timed step: at the run's average rate */
    return x0 > 0 ? y0 * step / x0 : y0;
}
