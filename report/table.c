/* table.c: DIR/report.md (the comparison table, one column per run, the real outputs, the
 * per-class and judge tables, the pictures) and DIR/report.json, both from the runs'
 * figure objects. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

/* the number at a dotted path ("compute.flops_total"); found = 0 when absent */
static double num(json_t *o, const char *path, int *found) {
    char key[64];
    const char *dot;
    while ((dot = strchr(path, '.')) && o) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        o = json_object_get(o, key);
        path = dot + 1;
    }
    json_t *v = o ? json_object_get(o, path) : NULL;
    *found = json_is_number(v);
    return *found ? json_number_value(v) : 0;
}

static const char *str(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* 1234567 -> "1,234,567" */
static char *count(double v, char *buf, size_t len) {
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t n = strlen(digits), k = 0;
    if (v < 0 && k + 1 < len) buf[k++] = '-';
    for (size_t i = 0; i < n && k + 2 < len; i++) {
        buf[k++] = digits[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n) buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

static char *flops(double v, char *buf, size_t len) {
    static const char *const unit[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};
    int u = 0;
    while (v >= 1000 && u < 5) v /= 1000, u++;
    snprintf(buf, len, "%.3g %s", v, unit[u]);
    return buf;
}

/* a sample's first characters for a table cell: newlines as ⏎, markdown's marks escaped */
static void excerpt(const char *text, char *buf, size_t len, size_t max_chars) {
    size_t k = 0, chars = 0;
    const unsigned char *p = (const unsigned char *)text;
    for (; *p && k + 8 < len; p++) {
        if ((*p & 0xC0) != 0x80 && chars++ == max_chars) break;
        if (*p == '\n') k += (size_t)snprintf(buf + k, len - k, "⏎");
        else if (strchr("|`*_<[]", *p)) buf[k++] = '\\', buf[k++] = (char)*p;
        else if (*p >= 0x20) buf[k++] = (char)*p;
    }
    buf[k] = 0;
    if (*p && k + 4 < len) strcat(buf, "…");
}

typedef void (*cell_fn)(json_t *run, char *buf, size_t len);

static void row(FILE *f, const char *label, json_t *const *figs, int n, cell_fn fn) {
    char buf[2048];
    fprintf(f, "| %s |", label);
    for (int i = 0; i < n; i++) {
        buf[0] = 0;
        fn(figs[i], buf, sizeof buf);
        fprintf(f, " %s |", *buf ? buf : "–");
    }
    fprintf(f, "\n");
}

static int is(json_t *run, const char *job) { return strcmp(str(run, "job"), job) == 0; }

/* ---- the cells ---------------------------------------------------------------------- */

static void cell_job(json_t *r, char *b, size_t l) {
    if (*str(r, "model")) snprintf(b, l, "%s (%s); %s", str(r, "job"), str(r, "model"), str(r, "status"));
    else snprintf(b, l, "%s; %s", str(r, "job"), str(r, "status"));
}

static void cell_goal(json_t *r, char *b, size_t l) {
    snprintf(b, l, "%s", is(r, "classify") ? "**predict**: the digit an image shows (one of 10 labels)"
                         : is(r, "gpt")    ? "**create**: text that continues a prompt, one character at a time"
                                           : "**create**: a new image of the digit asked for, from noise");
}

static void cell_output(json_t *r, char *b, size_t l) {
    json_t *o = json_object_get(r, "output");
    char ex[512];
    if (json_object_get(o, "confusion_matrix"))
        snprintf(b, l, "a label per image; [confusion matrix](%s)", str(json_object_get(r, "plots"), "confusion"));
    else if (json_object_get(o, "text")) {
        excerpt(str(o, "text"), ex, sizeof ex, 60);
        snprintf(b, l, "text: “%s” (prompt \"%s\", seed %lld; [full sample](#sample-%s))", ex, str(o, "prompt"),
                 json_integer_value(json_object_get(o, "seed")), str(r, "name"));
    } else if (*str(o, "sample_grid"))
        snprintf(b, l, "28×28 grey images: ![samples](%s)", str(o, "sample_grid"));
}

static void cell_data(json_t *r, char *b, size_t l) {
    int f1, f2, f3;
    json_t *d = json_object_get(r, "data");
    double set = num(d, "train_set", &f1), seen = num(d, "seen", &f2), times = num(d, "times_seen", &f3);
    char c1[32], c2[32];
    const char *unit = str(d, "unit");
    size_t k = 0;
    if (f1) k += (size_t)snprintf(b + k, l - k, "%s training %s; ", count(set, c1, sizeof c1), unit);
    k += (size_t)snprintf(b + k, l - k, "labelled: %s; ", str(d, "labelled"));
    if (f2) snprintf(b + k, l - k, "%s %s seen (%.2f× the set)", count(seen, c2, sizeof c2), unit, f3 ? times : 0);
}

static void cell_params(json_t *r, char *b, size_t l) {
    int f;
    double p = num(r, "params", &f);
    char c[32];
    if (f) snprintf(b, l, "%s parameters", count(p, c, sizeof c));
}

static void cell_flops_step(json_t *r, char *b, size_t l) {
    int f1, f2, f3;
    double s = num(r, "compute.flops_per_step", &f1), e = num(r, "compute.flops_per_example", &f2);
    double per = num(r, "data.per_step", &f3);
    char c1[32], c2[32], c3[32];
    if (f1 && f2 && f3)
        snprintf(b, l, "%s (%s %s × %s)", flops(s, c1, sizeof c1), count(per, c3, sizeof c3),
                 str(json_object_get(r, "data"), "unit"), flops(e, c2, sizeof c2));
}

static void cell_flops_total(json_t *r, char *b, size_t l) {
    int f1, f2;
    double t = num(r, "compute.flops_total", &f1), steps = num(r, "compute.steps", &f2);
    char c1[32], c2[32];
    if (f1 && f2) snprintf(b, l, "%s (%s steps)", flops(t, c1, sizeof c1), count(steps, c2, sizeof c2));
}

static void cell_time(json_t *r, char *b, size_t l) {
    int f1, f2, f3, f4;
    double w = num(r, "compute.wall_time_s", &f1), t = num(r, "compute.train_time_s", &f2);
    double ws = num(r, "compute.world_size", &f3), th = num(r, "compute.threads_per_rank", &f4);
    size_t k = 0;
    if (f1 && f2) k += (size_t)snprintf(b, l, "%.1f s (training %.1f s); ", w, t);
    if (f3 && f4) k += (size_t)snprintf(b + k, l - k, "%.0f rank%s × %.0f thread%s; ", ws, ws == 1 ? "" : "s", th,
                                        th == 1 ? "" : "s");
    snprintf(b + k, l - k, "%s", str(json_object_get(r, "compute"), "device"));
}

static void cell_eval(json_t *r, char *b, size_t l) {
    int f1, f2, f3, f4, f5;
    json_t *e = json_object_get(r, "evaluation");
    if (is(r, "classify")) {
        double acc = num(e, "test_acc", &f1), p = num(e, "macro_precision", &f2), rc = num(e, "macro_recall", &f3);
        if (f1) snprintf(b, l, "test accuracy **%.2f%%**; precision / recall averaged over the classes %.4f / %.4f "
                               "(per class below)", 100 * acc, f2 ? p : 0, f3 ? rc : 0);
        return;
    }
    double v = num(e, "val_loss", &f1);
    size_t k = 0;
    if (f1 && is(r, "gpt"))
        k += (size_t)snprintf(b, l, "validation loss **%.4f**, perplexity **%.2f**", v, num(e, "perplexity", &f2));
    else if (f1) k += (size_t)snprintf(b, l, "validation MSE %.4f", v);
    double acc = num(e, "judge.cond_acc", &f3), fd = num(e, "judge.fd_generated", &f4);
    double floor_ = num(e, "judge.fd_floor_train_vs_test", &f5);
    if (f3 && f4 && f5)
        snprintf(b + k, l - k, "; LeNet judge: conditional accuracy **%.1f%%**, Fréchet distance **%.2f** (floor %.2f, "
                               "trivial baseline %.1f)", 100 * acc, fd, floor_, num(e, "judge.fd_trivial_baseline", &f1));
}

static void cell_predict(json_t *r, char *b, size_t l) {
    int f1, f2, f3;
    json_t *p = json_object_get(r, "predictability");
    char c1[32], c2[32];
    if (is(r, "classify")) {
        double n = num(p, "inputs", &f1), same = num(p, "same_label_twice", &f2);
        if (f1 && f2)
            snprintf(b, l, "each test image classified twice: the same label for %s of %s (%.1f%%)",
                     count(same, c1, sizeof c1), count(n, c2, sizeof c2), n > 0 ? 100 * same / n : 0);
        return;
    }
    double seeds = num(p, "seeds", &f1), distinct = num(p, "distinct_outputs", &f2);
    if (!f1 || !f2) return;
    size_t k = (size_t)snprintf(b, l, "%s, %.0f seeds: %.0f distinct outputs (%.0f%% identical)",
                                is(r, "gpt") ? "one prompt" : "one digit (3)", seeds, distinct,
                                100 * (1 - distinct / seeds));
    double d = num(p, "mean_abs_pixel_difference", &f3);
    if (f3) k += (size_t)snprintf(b + k, l - k, ", mean absolute pixel difference between seeds %.1f of 255", d);
    snprintf(b + k, l - k, "; one seed twice: %s",
             json_is_true(json_object_get(p, "same_seed_twice_identical")) ? "identical" : "**different**");
}

static void cell_spread(json_t *r, char *b, size_t l) {
    json_t *s = json_object_get(r, "spread");
    int f1, f2, f3, f4, f5;
    double n = num(s, "runs", &f1), mean = num(s, "mean", &f2), sd = num(s, "sd", &f3), lo = num(s, "min", &f4),
           hi = num(s, "max", &f5);
    if (!(f1 && f2 && f3 && f4 && f5)) {
        if (s) snprintf(b, l, "one run of this config");
        return;
    }
    if (strcmp(str(s, "metric"), "test_acc") == 0)
        snprintf(b, l, "test accuracy over %.0f seeds: mean %.2f%%, sd %.2f points, %.2f–%.2f%%", n, 100 * mean,
                 100 * sd, 100 * lo, 100 * hi);
    else snprintf(b, l, "%s over %.0f seeds: mean %.4f, sd %.4f, %.4f–%.4f", str(s, "metric"), n, mean, sd, lo, hi);
}

/* ---- the sections ------------------------------------------------------------------- */

static void comparison_table(FILE *f, json_t *const *figs, int n) {
    fprintf(f, "## The runs side by side\n\n|   |");
    for (int i = 0; i < n; i++) fprintf(f, " %s |", str(figs[i], "name"));
    fprintf(f, "\n|---|");
    for (int i = 0; i < n; i++) fprintf(f, "---|");
    fprintf(f, "\n");
    row(f, "job, status", figs, n, cell_job);
    row(f, "primary goal", figs, n, cell_goal);
    row(f, "output (a real one, from the checkpoint)", figs, n, cell_output);
    row(f, "data used", figs, n, cell_data);
    row(f, "model size", figs, n, cell_params);
    row(f, "training compute per step", figs, n, cell_flops_step);
    row(f, "training compute in total", figs, n, cell_flops_total);
    row(f, "wall time, ranks × threads, device", figs, n, cell_time);
    row(f, "evaluation", figs, n, cell_eval);
    row(f, "predictability (same input again)", figs, n, cell_predict);
    row(f, "spread of the final metric over seeds", figs, n, cell_spread);
    fprintf(f, "\nFLOPs count the matrix products and convolutions (a multiply-add is 2), a training example "
               "as 3× its forward pass; times are from the runs' summary.json.\n\n");
}

/* precision and recall of class k from the confusion matrix [true][pred] in report.json */
static int from_matrix(json_t *m, int k, double *precision, double *recall) {
    long tp = 0, pred = 0, truth = 0;
    if (json_array_size(m) != 10) return 0;
    for (int j = 0; j < 10; j++) {
        pred += (long)json_integer_value(json_array_get(json_array_get(m, (size_t)j), (size_t)k));
        truth += (long)json_integer_value(json_array_get(json_array_get(m, (size_t)k), (size_t)j));
    }
    tp = (long)json_integer_value(json_array_get(json_array_get(m, (size_t)k), (size_t)k));
    *precision = pred ? (double)tp / (double)pred : 0, *recall = truth ? (double)tp / (double)truth : 0;
    return 1;
}

static void per_class(FILE *f, json_t *r) {
    json_t *e = json_object_get(r, "evaluation");
    json_t *m = json_object_get(json_object_get(r, "output"), "confusion_matrix");
    int fp, fr;
    if (!json_object_get(e, "precision_0")) return;
    fprintf(f, "### %s: per class (test set)\n\nThe run's own figures (`summary.json`) beside those of the confusion "
               "matrix the report computed from the final checkpoint.\n\n"
               "| class | precision | recall | precision (checkpoint) | recall (checkpoint) |\n|---|---|---|---|---|\n",
            str(r, "name"));
    for (int k = 0; k < 10; k++) {
        char kp[32], kr[32];
        snprintf(kp, sizeof kp, "precision_%d", k), snprintf(kr, sizeof kr, "recall_%d", k);
        double p = num(e, kp, &fp), rc = num(e, kr, &fr), mp, mr;
        if (!fp || !fr) continue;
        if (from_matrix(m, k, &mp, &mr)) fprintf(f, "| %d | %.4f | %.4f | %.4f | %.4f |\n", k, p, rc, mp, mr);
        else fprintf(f, "| %d | %.4f | %.4f | – | – |\n", k, p, rc);
    }
    json_t *plots = json_object_get(r, "plots");
    if (*str(plots, "confusion")) fprintf(f, "\n![confusion matrix of %s](%s)\n", str(r, "name"), str(plots, "confusion"));
    fprintf(f, "\n");
}

static void outputs(FILE *f, json_t *r) {
    json_t *o = json_object_get(r, "output");
    int found;
    if (json_object_get(o, "text")) {
        fprintf(f, "### <a id=\"sample-%s\"></a>%s: a sample (prompt \"%s\", seed %lld)\n\n```\n%s\n```\n\n",
                str(r, "name"), str(r, "name"), str(o, "prompt"), json_integer_value(json_object_get(o, "seed")),
                str(o, "text"));
    }
    if (*str(o, "sample_grid"))
        fprintf(f, "### %s: samples, one row per digit 0–9 (seed 1)\n\n![samples of %s](%s)\n\n", str(r, "name"),
                str(r, "name"), str(o, "sample_grid"));
    json_t *j = json_object_get(json_object_get(r, "evaluation"), "judge");
    if (j) {
        fprintf(f, "Judged by a LeNet (%.0f samples per digit, guidance %g, %s %.0f steps): ",
                num(j, "n_per_label", &found), num(j, "guidance", &found), str(j, "sampler"), num(j, "steps", &found));
        for (int k = 0; k < 10; k++) {
            char key[32];
            snprintf(key, sizeof key, "cond_acc_%d", k);
            fprintf(f, "%s%d: %.0f%%", k ? ", " : "", k, 100 * num(j, key, &found));
        }
        fprintf(f, ".\n\n");
    }
}

static void pictures(FILE *f, json_t *const *figs, int n, const char *overlay_png) {
    fprintf(f, "## Pictures\n\n");
    if (overlay_png) fprintf(f, "![loss against compute, every run](%s)\n\n", overlay_png);
    for (int i = 0; i < n; i++) {
        json_t *p = json_object_get(figs[i], "plots");
        if (*str(p, "loss")) fprintf(f, "![loss curves of %s](%s)\n\n", str(figs[i], "name"), str(p, "loss"));
        if (*str(p, "throughput"))
            fprintf(f, "![throughput of %s](%s)\n\n", str(figs[i], "name"), str(p, "throughput"));
    }
}

int table_write(json_t *const *figs, int n, const char *outdir, const char *overlay_png, const char *command) {
    char path[REPORT_PATH + 32];
    snprintf(path, sizeof path, "%s/report.md", outdir);
    FILE *f = fopen(path, "w");
    if (!f) return fprintf(stderr, "dtrain report: %s: cannot create\n", path), -1;
    fprintf(f, "# Predict and create: %d run%s compared\n\nMade by `%s`.\n\n", n, n == 1 ? "" : "s", command);
    comparison_table(f, figs, n);
    fprintf(f, "## Outputs and evaluation in detail\n\n");
    for (int i = 0; i < n; i++) per_class(f, figs[i]), outputs(f, figs[i]);
    pictures(f, figs, n, overlay_png);
    int rc = fclose(f) == 0 ? 0 : -1;
    json_t *root = json_object(), *runs = json_array();
    for (int i = 0; i < n; i++) json_array_append(runs, figs[i]);
    json_object_set_new(root, "command", json_string(command));
    json_object_set_new(root, "runs", runs);
    snprintf(path, sizeof path, "%s/report.json", outdir);
    rc |= json_dump_file(root, path, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (rc) fprintf(stderr, "dtrain report: cannot write the report in %s\n", outdir);
    return rc ? -1 : 0;
}
