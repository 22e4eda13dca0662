/* plot.c: the drawing primitives of the report's pictures (cairo). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"

#define PLOT_PI 3.14159265358979323846

static const double palette[][3] = {{0.12, 0.47, 0.71}, {0.84, 0.15, 0.16}, {0.17, 0.63, 0.17},
                                    {1.00, 0.50, 0.05}, {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29},
                                    {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50}};
#define NCOLORS (int)(sizeof palette / sizeof palette[0])

int canvas_new(canvas *c, int w, int h) {
    c->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    c->cr = cairo_create(c->surface);
    c->w = w, c->h = h;
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(c->cr), cairo_surface_destroy(c->surface);
        return -1;
    }
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_select_font_face(c->cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return 0;
}

int canvas_save(canvas *c, const char *path) {
    cairo_surface_flush(c->surface);
    cairo_status_t st = cairo_surface_write_to_png(c->surface, path);
    cairo_destroy(c->cr), cairo_surface_destroy(c->surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        fprintf(stderr, "dtrain report: %s: cannot write the PNG: %s\n", path, cairo_status_to_string(st));
        return -1;
    }
    return 0;
}

void plot_text(canvas *c, double x, double y, double size, double align, const char *s) {
    cairo_text_extents_t e;
    cairo_set_font_size(c->cr, size);
    cairo_text_extents(c->cr, s, &e);
    cairo_move_to(c->cr, x - align * e.x_advance, y);
    cairo_show_text(c->cr, s);
}

void plot_color(canvas *c, int k) {
    const double *p = palette[((k % NCOLORS) + NCOLORS) % NCOLORS];
    cairo_set_source_rgb(c->cr, p[0], p[1], p[2]);
}

/* ---- scales ------------------------------------------------------------------------- */

static double tick_step(double span, int target) {
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static double map(double v, double lo, double hi, int lg) {
    return lg ? (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) : (v - lo) / (hi - lo);
}

static double to_px(const axes *a, double x) { return a->px + map(x, a->x0, a->x1, a->logx) * a->pw; }
static double to_py(const axes *a, double y) { return a->py + a->ph - map(y, a->y0, a->y1, a->logy) * a->ph; }

/* widens [lo, hi] to whole ticks (linear) or whole 1-2-5 steps (log) */
static void nice_range(double *lo, double *hi, int lg) {
    if (!(*hi > *lo)) {
        double d = lg ? *lo * 0.5 : (fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1);
        *lo -= lg ? d : d, *hi += lg ? 2 * d : d;
    }
    if (lg) {
        *lo = pow(10, floor(log10(*lo) * 10) / 10);
        *hi = pow(10, ceil(log10(*hi) * 10) / 10);
        return;
    }
    double s = tick_step(*hi - *lo, 5);
    *lo = floor(*lo / s + 1e-9) * s, *hi = ceil(*hi / s - 1e-9) * s;
}

/* tick values into t[] (at most max); returns how many */
static int ticks(double lo, double hi, int lg, double *t, int max) {
    int n = 0;
    if (!lg) {
        double s = tick_step(hi - lo, 5);
        for (double v = ceil(lo / s - 1e-9) * s; v <= hi + s * 1e-9 && n < max; v += s) t[n++] = fabs(v) < s * 1e-9 ? 0 : v;
        return n;
    }
    double decades = log10(hi) - log10(lo);
    static const double m125[] = {1, 2, 5}, m1[] = {1};
    const double *mult = decades <= 3 ? m125 : m1;
    int nm = decades <= 3 ? 3 : 1;
    for (int d = (int)floor(log10(lo)); d <= (int)ceil(log10(hi)); d++)
        for (int k = 0; k < nm; k++) {
            double v = mult[k] * pow(10, d);
            if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && n < max) t[n++] = v;
        }
    if (n >= 3) return n;
    n = 0;
    double s = tick_step(hi - lo, 4);
    for (double v = ceil(lo / s - 1e-9) * s; v <= hi * (1 + 1e-9) && n < max; v += s)
        if (v > 0) t[n++] = v;
    return n;
}

static void tick_label(double v, char *buf, size_t len) {
    if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) snprintf(buf, len, "%.0e", v);
    else snprintf(buf, len, "%g", v);
}

/* ---- axes ----------------------------------------------------------------------------- */

static void draw_ticks(canvas *c, const axes *a) {
    cairo_t *cr = c->cr;
    double t[64];
    char buf[32];
    int n = ticks(a->x0, a->x1, a->logx, t, 64);
    for (int i = 0; i < n; i++) {
        double x = to_px(a, t[i]);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, a->py), cairo_line_to(cr, x, a->py + a->ph), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, a->py + a->ph), cairo_line_to(cr, x, a->py + a->ph + 5), cairo_stroke(cr);
        tick_label(t[i], buf, sizeof buf);
        plot_text(c, x, a->py + a->ph + 18, 11, 0.5, buf);
    }
    n = ticks(a->y0, a->y1, a->logy, t, 64);
    for (int i = 0; i < n; i++) {
        double y = to_py(a, t[i]);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, a->px, y), cairo_line_to(cr, a->px + a->pw, y), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, a->px - 5, y), cairo_line_to(cr, a->px, y), cairo_stroke(cr);
        tick_label(t[i], buf, sizeof buf);
        plot_text(c, a->px - 8, y + 4, 11, 1, buf);
    }
}

void axes_draw(canvas *c, axes *a, double bx, double by, double bw, double bh, double xmin, double xmax,
               double ymin, double ymax, const char *title, const char *xlabel, const char *ylabel) {
    cairo_t *cr = c->cr;
    a->px = bx + 72, a->py = by + 54, a->pw = bw - 72 - 20, a->ph = bh - 54 - 52;
    a->x0 = xmin, a->x1 = xmax, a->y0 = ymin, a->y1 = ymax;
    nice_range(&a->x0, &a->x1, a->logx);
    nice_range(&a->y0, &a->y1, a->logy);
    cairo_set_line_width(cr, 1);
    draw_ticks(c, a);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, a->px, a->py, a->pw, a->ph);
    cairo_stroke(cr);
    plot_text(c, a->px + a->pw / 2, by + 20, 14, 0.5, title);
    plot_text(c, a->px + a->pw / 2, a->py + a->ph + 40, 12, 0.5, xlabel);
    cairo_save(cr);
    cairo_translate(cr, bx + 16, a->py + a->ph / 2);
    cairo_rotate(cr, -PLOT_PI / 2);
    plot_text(c, 0, 0, 12, 0.5, ylabel);
    cairo_restore(cr);
}

void plot_curve(canvas *c, const axes *a, const double *x, const double *y, int n, int color, int dashed,
                int markers) {
    cairo_t *cr = c->cr;
    static const double dash[] = {6, 4};
    plot_color(c, color);
    cairo_set_line_width(cr, 2);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    cairo_save(cr);
    cairo_rectangle(cr, a->px, a->py, a->pw, a->ph);
    cairo_clip(cr);
    int pen = 0;
    for (int i = 0; i < n; i++) {
        if ((a->logx && !(x[i] > 0)) || (a->logy && !(y[i] > 0)) || !isfinite(x[i]) || !isfinite(y[i])) continue;
        double px = to_px(a, x[i]), py = to_py(a, y[i]);
        if (pen) cairo_line_to(cr, px, py);
        else cairo_move_to(cr, px, py), pen = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr); /* markers on the frame's edge stay whole */
    cairo_set_dash(cr, dash, 0, 0);
    for (int i = 0; markers && i < n; i++) {
        if ((a->logx && !(x[i] > 0)) || (a->logy && !(y[i] > 0)) || !isfinite(x[i]) || !isfinite(y[i])) continue;
        cairo_arc(cr, to_px(a, x[i]), to_py(a, y[i]), 3, 0, 2 * PLOT_PI);
        cairo_fill(cr);
    }
    cairo_set_line_width(cr, 1);
}

void plot_legend(canvas *c, const axes *a, const char *const *labels, const int *colors, const int *dashed, int n) {
    cairo_t *cr = c->cr;
    static const double dash[] = {6, 4};
    double total = 0, gap = 18;
    cairo_set_font_size(cr, 11);
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, labels[i], &e);
        total += 34 + e.x_advance + (i ? gap : 0);
    }
    double x = a->px + (a->pw - total) / 2, y = a->py - 12;
    if (x < a->px) x = a->px;
    for (int i = 0; i < n; i++) {
        plot_color(c, colors[i]);
        cairo_set_line_width(cr, 2);
        cairo_set_dash(cr, dash, dashed && dashed[i] ? 2 : 0, 0);
        cairo_move_to(cr, x, y - 4), cairo_line_to(cr, x + 28, y - 4), cairo_stroke(cr);
        cairo_set_dash(cr, dash, 0, 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_text_extents_t e;
        cairo_set_font_size(cr, 11);
        cairo_text_extents(cr, labels[i], &e);
        plot_text(c, x + 34, y, 11, 0, labels[i]);
        x += 34 + e.x_advance + gap;
    }
    cairo_set_line_width(cr, 1);
}

/* ---- heat map ------------------------------------------------------------------------- */

void plot_heatmap(canvas *c, double bx, double by, double bw, double bh, const long *m, int k, const char *title,
                  const char *xlabel, const char *ylabel) {
    cairo_t *cr = c->cr;
    double side = fmin(bw - 80, bh - 100), cell = side / k, x0 = bx + 64, y0 = by + 40;
    char buf[32];
    for (int i = 0; i < k; i++) {
        long row = 0;
        for (int j = 0; j < k; j++) row += m[i * k + j];
        for (int j = 0; j < k; j++) {
            double share = row ? (double)m[i * k + j] / (double)row : 0, s = sqrt(share);
            cairo_set_source_rgb(cr, 1 - 0.9 * s, 1 - 0.6 * s, 1 - 0.25 * s); /* white to dark blue */
            cairo_rectangle(cr, x0 + j * cell, y0 + i * cell, cell, cell);
            cairo_fill(cr);
            double grey = s > 0.6 ? 1 : 0;
            cairo_set_source_rgb(cr, grey, grey, grey);
            snprintf(buf, sizeof buf, "%ld", m[i * k + j]);
            if (m[i * k + j]) plot_text(c, x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell + 4, cell * 0.3, 0.5, buf);
        }
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, x0, y0, cell * k, cell * k);
    cairo_stroke(cr);
    for (int i = 0; i < k; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        plot_text(c, x0 + (i + 0.5) * cell, y0 + side + 16, 11, 0.5, buf);
        plot_text(c, x0 - 8, y0 + (i + 0.5) * cell + 4, 11, 1, buf);
    }
    plot_text(c, x0 + side / 2, by + 22, 14, 0.5, title);
    plot_text(c, x0 + side / 2, y0 + side + 38, 12, 0.5, xlabel);
    cairo_save(cr);
    cairo_translate(cr, bx + 18, y0 + side / 2);
    cairo_rotate(cr, -PLOT_PI / 2);
    plot_text(c, 0, 0, 12, 0.5, ylabel);
    cairo_restore(cr);
}
