/* spread.c: the spread of the final metric over seeds, when several runs of one job with
 * the same config (all but the seed and the keys that do not change what is computed) are
 * given. Runs of one job whose configs differ otherwise are not pooled, and say so. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

/* keys that may differ within a group of seeds */
static int free_key(const char *k) {
    static const char *const keys[] = {"out", "seed", "ckpt_dir", "resume", "threads", "log_interval",
                                       "eval_interval", "ckpt_interval", "ckpt_keep", NULL};
    for (const char *const *p = keys; *p; p++)
        if (strcmp(k, *p) == 0) return 1;
    return 0;
}

/* the first key on which two configs differ (NULL when none does) */
static const char *differing_key(const run_files *a, const run_files *b) {
    const char *k;
    json_t *v;
    json_object_foreach(a->config, k, v) {
        if (free_key(k)) continue;
        if (strcmp(json_string_value(v), run_cfg(b, k)) != 0) return k;
    }
    json_object_foreach(b->config, k, v) {
        if (!free_key(k) && !json_object_get(a->config, k)) return k;
    }
    return NULL;
}

static const char *metric_of(const char *job) { return strcmp(job, "classify") == 0 ? "test_acc" : "val_loss"; }

void spread_add(run_files *const *r, json_t *const *figs, int n) {
    for (int i = 0; i < n; i++) {
        if (!r[i]->summary) continue;
        const char *metric = metric_of(r[i]->job);
        double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
        int count = 0, found;
        json_t *members = json_array();
        for (int j = 0; j < n; j++) {
            if (!r[j]->summary || strcmp(r[i]->job, r[j]->job) != 0) continue;
            const char *k = differing_key(r[i], r[j]);
            if (k) {
                if (j > i)
                    fprintf(stderr, "dtrain report: %s and %s are both %s runs but differ in '%s' (%s, %s): their "
                                    "figures are not pooled over seeds\n", r[i]->dir, r[j]->dir, r[i]->job, k,
                            run_cfg(r[i], k), run_cfg(r[j], k));
                continue;
            }
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
        json_object_set_new(figs[i], "spread", s);
    }
}
