/* plot.h: line charts and heat maps drawn with cairo, written as PNG (cairo's writer, which
 * is libpng). Axes with ticks, labels and a title; linear or logarithmic scales. */
#ifndef DTRAIN_REPORT_PLOT_H
#define DTRAIN_REPORT_PLOT_H

#include <cairo.h>

typedef struct canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    int w, h;
} canvas;

/* a white canvas of w x h pixels; 0, or -1 if cairo could not make one */
int canvas_new(canvas *c, int w, int h);
/* writes the PNG and frees the canvas; 0, or -1 with a message naming the path */
int canvas_save(canvas *c, const char *path);

/* A plot area in canvas pixels and the data ranges it shows. */
typedef struct axes {
    double px, py, pw, ph;
    double x0, x1, y0, y1;
    int logx, logy;
} axes;

/* Lays out axes in the box (bx, by, bw, bh) of the canvas, with room for the labels, for
 * data in [xmin, xmax] x [ymin, ymax] (ranges widened to round ticks), and draws the frame,
 * grid, ticks, tick labels, axis labels and title. */
void axes_draw(canvas *c, axes *a, double bx, double by, double bw, double bh, double xmin, double xmax,
               double ymin, double ymax, const char *title, const char *xlabel, const char *ylabel);

/* the k-th colour of the palette, and a curve in it (points outside a log axis skipped) */
void plot_color(canvas *c, int k);
void plot_curve(canvas *c, const axes *a, const double *x, const double *y, int n, int color, int dashed,
                int markers);
/* a legend in one row between the title and the plot area */
void plot_legend(canvas *c, const axes *a, const char *const *labels, const int *colors, const int *dashed, int n);

/* A square matrix (rows: true class, columns: predicted) as a heat map, each cell shaded by
 * its share of the row and labelled with its count, in the box (bx, by, bw, bh). */
void plot_heatmap(canvas *c, double bx, double by, double bw, double bh, const long *m, int k, const char *title,
                  const char *xlabel, const char *ylabel);

/* text with its left end (align 0), centre (0.5) or right end (1) at x, baseline at y */
void plot_text(canvas *c, double x, double y, double size, double align, const char *s);

#endif
