/* figures.c: the pictures of a report: per run, the loss curves (against steps and against
 * training time), the throughput over the run and, for a classifier, its confusion matrix;
 * across runs, the loss curves normalised by compute. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "report.h"
#include "util.h"

static const char *loss_name(const char *job) {
    if (strcmp(job, "gpt") == 0) return "cross-entropy (nats per token)";
    if (strcmp(job, "diffusion") == 0) return "noise-prediction MSE";
    return "cross-entropy (nats)";
}

static const char *eval_name(const char *job) {
    return strcmp(job, "classify") == 0 ? "test loss" : "validation loss";
}

static void range(const series *s, double *lo, double *hi) {
    for (int i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i])) continue;
        if (s->y[i] < *lo) *lo = s->y[i];
        if (s->y[i] > *hi) *hi = s->y[i];
    }
}

/* the x values of s mapped to training time; NULL when the run logged no timings */
static double *times_of(const run_files *r, const series *s) {
    if (r->time_at.n == 0 || s->n == 0) return NULL;
    double *t = xmalloc((size_t)s->n * sizeof *t);
    for (int i = 0; i < s->n; i++) t[i] = run_time_at(r, s->x[i]);
    return t;
}

static void loss_panel(canvas *c, const run_files *r, double bx, int vs_time) {
    double lo = INFINITY, hi = -INFINITY, xmax = 1;
    range(&r->train_loss, &lo, &hi), range(&r->eval_loss, &lo, &hi);
    if (!(hi >= lo)) lo = 0, hi = 1;
    double *tt = vs_time ? times_of(r, &r->train_loss) : NULL, *te = vs_time ? times_of(r, &r->eval_loss) : NULL;
    const double *xt = vs_time ? tt : r->train_loss.x, *xe = vs_time ? te : r->eval_loss.x;
    for (int i = 0; xt && i < r->train_loss.n; i++) xmax = fmax(xmax, xt[i]);
    for (int i = 0; xe && i < r->eval_loss.n; i++) xmax = fmax(xmax, xe[i]);
    axes a = {0};
    char title[256];
    snprintf(title, sizeof title, "%s (%s): loss against %s", r->name, r->job, vs_time ? "training time" : "steps");
    axes_draw(c, &a, bx, 0, c->w / 2.0, c->h, 0, xmax, lo, hi, title,
              vs_time ? "training time (s, from the logged step times)" : "optimizer step", loss_name(r->job));
    if (xt) plot_curve(c, &a, xt, r->train_loss.y, r->train_loss.n, 0, 0, r->train_loss.n < 30);
    if (xe) plot_curve(c, &a, xe, r->eval_loss.y, r->eval_loss.n, 1, 1, 1);
    const char *labels[] = {"training loss", eval_name(r->job)};
    int colors[] = {0, 1}, dashed[] = {0, 1};
    plot_legend(c, &a, labels, colors, dashed, 2);
    if (vs_time && !tt && !te) plot_text(c, a.px + a.pw / 2, a.py + a.ph / 2, 12, 0.5, "no timings logged");
    free(tt), free(te);
}

static int loss_figure(const run_files *r, run_outputs *o, const char *outdir) {
    canvas c;
    if (canvas_new(&c, 1100, 420) != 0) return -1;
    loss_panel(&c, r, 0, 0);
    loss_panel(&c, r, 550, 1);
    char path[2 * REPORT_PATH];
    snprintf(o->loss_png, sizeof o->loss_png, "%.120s-loss.png", r->name);
    snprintf(path, sizeof path, "%s/%s", outdir, o->loss_png);
    return canvas_save(&c, path);
}

static int throughput_figure(const run_files *r, run_outputs *o, const char *outdir) {
    if (r->throughput.n == 0) return 0;
    canvas c;
    if (canvas_new(&c, 640, 400) != 0) return -1;
    double lo = 0, hi = -INFINITY, xmax = 1;
    range(&r->throughput, &lo, &hi);
    for (int i = 0; i < r->throughput.n; i++) xmax = fmax(xmax, r->throughput.x[i]);
    axes a = {0};
    char title[256], ylabel[64];
    const char *unit = strcmp(r->job, "gpt") == 0 ? "tokens" : "images";
    snprintf(title, sizeof title, "%s (%s): training throughput", r->name, r->job);
    snprintf(ylabel, sizeof ylabel, "%s per second (all ranks)", unit);
    axes_draw(&c, &a, 0, 0, c.w, c.h, 0, xmax, lo, hi, title, "optimizer step", ylabel);
    plot_curve(&c, &a, r->throughput.x, r->throughput.y, r->throughput.n, 2, 0, 1);
    char path[2 * REPORT_PATH];
    snprintf(o->throughput_png, sizeof o->throughput_png, "%.120s-throughput.png", r->name);
    snprintf(path, sizeof path, "%s/%s", outdir, o->throughput_png);
    return canvas_save(&c, path);
}

static int confusion_figure(const run_files *r, run_outputs *o, const char *outdir) {
    if (!o->has_confusion) return 0;
    canvas c;
    if (canvas_new(&c, 520, 540) != 0) return -1;
    char title[256];
    snprintf(title, sizeof title, "%s: confusion matrix, %ld test images", r->name, o->pred_total);
    plot_heatmap(&c, 0, 0, c.w, c.h, &o->confusion[0][0], 10, title, "predicted class",
                 "true class (shade: share of the row)");
    char path[2 * REPORT_PATH];
    snprintf(o->confusion_png, sizeof o->confusion_png, "%.120s-confusion.png", r->name);
    snprintf(path, sizeof path, "%s/%s", outdir, o->confusion_png);
    return canvas_save(&c, path);
}

int figures_run(const run_files *r, run_outputs *o, const char *outdir) {
    int rc = loss_figure(r, o, outdir);
    rc |= throughput_figure(r, o, outdir);
    rc |= confusion_figure(r, o, outdir);
    return rc;
}

/* ---- across runs ---------------------------------------------------------------------- */

/* s's points as (GFLOP so far, loss / first loss) */
static int normalised(const series *s, double flops_per_step, double *x, double *y) {
    int n = 0;
    for (int i = 0; i < s->n; i++)
        if (s->x[i] > 0 && s->y[0] > 0 && isfinite(s->y[i]))
            x[n] = s->x[i] * flops_per_step / 1e9, y[n++] = s->y[i] / s->y[0];
    return n;
}

int figures_overlay(run_files *const *r, run_outputs *const *o, int n, const char *outdir, const char *name) {
    canvas c;
    if (canvas_new(&c, 900, 500) != 0) return -1;
    double xlo = INFINITY, xhi = 0, ylo = INFINITY, yhi = 0;
    double **xs = xcalloc(2 * (size_t)n, sizeof *xs), **ys = xcalloc(2 * (size_t)n, sizeof *ys);
    int *ns = xcalloc(2 * (size_t)n, sizeof *ns);
    for (int k = 0; k < 2 * n; k++) {
        const series *s = k % 2 ? &r[k / 2]->eval_loss : &r[k / 2]->train_loss;
        xs[k] = xmalloc(((size_t)s->n + 1) * sizeof **xs), ys[k] = xmalloc(((size_t)s->n + 1) * sizeof **ys);
        ns[k] = o[k / 2]->flops_per_step > 0 ? normalised(s, o[k / 2]->flops_per_step, xs[k], ys[k]) : 0;
        for (int i = 0; i < ns[k]; i++) {
            xlo = fmin(xlo, xs[k][i]), xhi = fmax(xhi, xs[k][i]);
            ylo = fmin(ylo, ys[k][i]), yhi = fmax(yhi, ys[k][i]);
        }
    }
    if (!(xhi >= xlo)) xlo = 1, xhi = 10, ylo = 0.1, yhi = 1;
    axes a = {.logx = 1, .logy = 1};
    axes_draw(&c, &a, 0, 0, c.w, c.h, xlo, xhi, ylo, yhi,
              "loss against training compute, every run (solid: training, dashed: validation/test)",
              "training compute so far (GFLOP, log scale)", "loss / its first logged value (log scale)");
    const char **labels = xcalloc((size_t)n, sizeof *labels);
    int *colors = xcalloc((size_t)n, sizeof *colors);
    char (*text)[200] = xcalloc((size_t)n, sizeof *text);
    for (int k = 0; k < 2 * n; k++) plot_curve(&c, &a, xs[k], ys[k], ns[k], k / 2, k % 2, k % 2);
    for (int i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "%.120s (%.31s)", r[i]->name, r[i]->job);
        labels[i] = text[i], colors[i] = i;
    }
    plot_legend(&c, &a, labels, colors, NULL, n);
    for (int k = 0; k < 2 * n; k++) free(xs[k]), free(ys[k]);
    free(xs), free(ys), free(ns), free(labels), free(colors), free(text);
    char path[2 * REPORT_PATH];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    return canvas_save(&c, path);
}
