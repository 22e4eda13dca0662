/* spread.c: the spread of the final metric over seeds, when several finished runs of one job
 * with the same config (all but the seed and the keys that do not change what is computed)
 * are given. Runs of one job in different configs are not pooled, and one line says so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "report.h"

/* keys that may differ within a group of seeds */
static int free_key(const char *k) {
    static const char *const keys[] = {"out", "seed", "ckpt_dir", "resume", "threads", "log_interval",
                                       "eval_interval", "ckpt_interval", "ckpt_keep", NULL};
    for (const char *const *p = keys; *p; p++)
        if (strcmp(k, *p) == 0) return 1;
    return 0;
}

/* the keys (up to 3) on which two configs differ, "key a/b, ..." into buf; 0 when none does */
static int differing_keys(const run_files *a, const run_files *b, char *buf, size_t len) {
    const char *k;
    json_t *v;
    int n = 0;
    size_t used = 0;
    buf[0] = 0;
    json_object_foreach(a->config, k, v) {
        if (free_key(k) || strcmp(json_string_value(v), run_cfg(b, k)) == 0) continue;
        if (n++ < 3 && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s'%s' (%s, %s)", n > 1 ? ", " : "", k,
                                     json_string_value(v), run_cfg(b, k));
    }
    json_object_foreach(b->config, k, v) {
        if (free_key(k) || json_object_get(a->config, k)) continue;
        if (n++ < 3 && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s'%s' (none, %s)", n > 1 ? ", " : "", k,
                                     json_string_value(v));
    }
    return n;
}

static const char *metric_of(const char *job) { return strcmp(job, "classify") == 0 ? "test_acc" : "val_loss"; }

/* group[i]: the first finished run of i's job and config; -1 for unfinished runs */
static void group_runs(run_files *const *r, int n, int *group) {
    char keys[512];
    for (int i = 0; i < n; i++) {
        group[i] = -1;
        for (int j = 0; j <= i && group[i] < 0 && r[i]->summary; j++)
            if (r[j]->summary && strcmp(r[i]->job, r[j]->job) == 0 && differing_keys(r[i], r[j], keys, sizeof keys) == 0)
                group[i] = j;
    }
    /* one line per pair of groups of one job that cannot be pooled */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (group[i] == i && group[j] == j && strcmp(r[i]->job, r[j]->job) == 0) {
                differing_keys(r[i], r[j], keys, sizeof keys);
                fprintf(stderr, "dtrain report: %s and %s are both %s runs but differ in %s: their figures are not "
                                "pooled over seeds\n", r[i]->dir, r[j]->dir, r[i]->job, keys);
            }
}

/* a run that repeats an earlier member's seed (a copy of a run) is counted once */
static int repeats_seed(run_files *const *r, const int *group, int j) {
    for (int k = 0; k < j; k++)
        if (group[k] == group[j] && strcmp(run_cfg(r[k], "seed"), run_cfg(r[j], "seed")) == 0) return k;
    return -1;
}

static json_t *group_spread(run_files *const *r, const int *group, int n, int g) {
    const char *metric = metric_of(r[g]->job);
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    int count = 0, found;
    json_t *members = json_array();
    for (int j = 0; j < n; j++) {
        if (group[j] != g || repeats_seed(r, group, j) >= 0) continue;
        double v = run_num(r[j], metric, &found);
        if (!found) continue;
        sum += v, sq += v * v, count++;
        lo = fmin(lo, v), hi = fmax(hi, v);
        json_array_append_new(members, json_string(r[j]->name));
    }
    json_t *s = json_object();
    json_object_set_new(s, "metric", json_string(metric));
    json_object_set_new(s, "runs", json_integer(count));
    json_object_set_new(s, "members", members);
    if (count >= 2) {
        double mean = sum / count, var = fmax(sq - count * mean * mean, 0) / (count - 1);
        json_object_set_new(s, "mean", json_real(mean));
        json_object_set_new(s, "sd", json_real(sqrt(var)));
        json_object_set_new(s, "min", json_real(lo));
        json_object_set_new(s, "max", json_real(hi));
    }
    return s;
}

void spread_add(run_files *const *r, json_t *const *figs, int n) {
    int *group = xcalloc((size_t)(n > 0 ? n : 1), sizeof *group);
    group_runs(r, n, group);
    for (int j = 0; j < n; j++) {
        int k = group[j] >= 0 ? repeats_seed(r, group, j) : -1;
        if (k >= 0)
            fprintf(stderr, "dtrain report: %s has the config and seed of %s: counted once in the spread over seeds\n",
                    r[j]->dir, r[k]->dir);
    }
    for (int i = 0; i < n; i++)
        if (group[i] >= 0) json_object_set_new(figs[i], "spread", group_spread(r, group, n, group[i]));
    free(group);
}
