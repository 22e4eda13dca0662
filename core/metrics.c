#include "metrics.h"

#include <math.h>
#include <string.h>

#include "util.h"

static metric_kv *slot(metrics *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->kv[i].key, key) == 0) return &m->kv[i];
    if (m->n == METRICS_MAX) DIE("too many metrics (max %d) setting '%s'", METRICS_MAX, key);
    metric_kv *kv = &m->kv[m->n++];
    memset(kv, 0, sizeof *kv);
    snprintf(kv->key, sizeof kv->key, "%s", key);
    return kv;
}

void metrics_set(metrics *m, const char *key, double value) {
    metric_kv *kv = slot(m, key);
    kv->is_str = 0;
    kv->num = value;
}

void metrics_set_str(metrics *m, const char *key, const char *value) {
    metric_kv *kv = slot(m, key);
    kv->is_str = 1;
    snprintf(kv->str, sizeof kv->str, "%s", value);
}

int metrics_get(const metrics *m, const char *key, double *value) {
    for (int i = 0; i < m->n; i++)
        if (!m->kv[i].is_str && strcmp(m->kv[i].key, key) == 0) {
            *value = m->kv[i].num;
            return 1;
        }
    return 0;
}

void metrics_clear(metrics *m) { m->n = 0; }

static void write_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void metrics_write_json(const metrics *m, FILE *f) {
    fputc('{', f);
    for (int i = 0; i < m->n; i++) {
        const metric_kv *kv = &m->kv[i];
        if (i) fputs(", ", f);
        write_str(f, kv->key);
        fputs(": ", f);
        if (kv->is_str) write_str(f, kv->str);
        else if (!isfinite(kv->num)) fputs("null", f); /* JSON has no NaN */
        else if (kv->num == floor(kv->num) && fabs(kv->num) < 1e15) fprintf(f, "%.0f", kv->num);
        else fprintf(f, "%.9g", kv->num);
    }
    fputc('}', f);
}
