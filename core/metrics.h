/* metrics.h: flat key/value records written as one JSON object per line
 * (metrics.jsonl) or per file (summary.json). Keys keep insertion order. */
#ifndef DTRAIN_METRICS_H
#define DTRAIN_METRICS_H

#include <stdio.h>

#define METRICS_MAX 64

typedef struct metric_kv {
    char key[48];
    int is_str;
    double num;
    char str[128];
} metric_kv;

typedef struct metrics {
    metric_kv kv[METRICS_MAX];
    int n;
} metrics;

void metrics_set(metrics *m, const char *key, double value);
void metrics_set_str(metrics *m, const char *key, const char *value);
/* returns 1 and the value if the key holds a number */
int metrics_get(const metrics *m, const char *key, double *value);
void metrics_clear(metrics *m);
/* {"k": v, ...} on one line, no trailing newline; integers printed without a fraction */
void metrics_write_json(const metrics *m, FILE *f);

#endif
