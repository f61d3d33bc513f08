/* curves.c: learning curves read from a TSV and drawn as a PNG; see curves.h. */
#include "curves.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "png.h"

/* ---- reading ----------------------------------------------------------------------------------
 */

static int intern(char ***names, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*names)[i], s)) return i;
    *names = af_realloc(*names, (size_t)(*n + 1) * sizeof **names);
    (*names)[*n] = af_strdup(s);
    for (char *p = (*names)[*n]; *p; p++) /* names end up in an image's font: no controls */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return (*n)++;
}

/* Splits line at tabs into at most cap fields (in place); returns the count. */
static int split(char *line, char **f, int cap) {
    int n = 0;
    for (char *s = line;; s++) {
        if (n < cap) f[n] = s;
        n++;
        s = strchr(s, '\t');
        if (!s) break;
        *s = 0;
    }
    return n;
}

enum { C_TASK, C_METHOD, C_SIZE, C_MEAN, C_SD, NCOLS };
static const char *const col_name[NCOLS] = {"task", "method", "size", "mean", "sd"};
#define MAXF 64

static int number(const char *path, int line, const char *col, const char *s, double *v,
                  af_err *e) {
    char *end;
    *v = strtod(s, &end);
    if (end == s || *end || !isfinite(*v))
        return af_errf(e, "%s:%d: column %s: a number expected, '%s' found", path, line, col, s);
    return 0;
}

static int parse(curves *c, const char *path, char *text, af_err *e) {
    int col[NCOLS], ncols = 0, lineno = 0;
    char *f[MAXF];
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[len - 1] = 0;
        if (!*line && lineno > 1) continue;
        int n = split(line, f, MAXF);
        if (n > MAXF) return af_errf(e, "%s:%d: more than %d columns", path, lineno, MAXF);
        if (lineno == 1) {
            ncols = n;
            for (int k = 0; k < NCOLS; k++) {
                col[k] = -1;
                for (int i = 0; i < n; i++)
                    if (!strcmp(f[i], col_name[k])) col[k] = i;
                if (col[k] < 0)
                    return af_errf(e,
                                   "%s:1: no column '%s' in the header (task, method, size, "
                                   "mean and sd expected)",
                                   path, col_name[k]);
            }
            continue;
        }
        if (n != ncols)
            return af_errf(e, "%s:%d: %d columns expected (as the header), %d found", path, lineno,
                           ncols, n);
        curve_point p;
        if (number(path, lineno, "size", f[col[C_SIZE]], &p.size, e) ||
            number(path, lineno, "mean", f[col[C_MEAN]], &p.mean, e) ||
            number(path, lineno, "sd", f[col[C_SD]], &p.sd, e))
            return -1;
        if (p.size <= 0)
            return af_errf(e, "%s:%d: size %g: a positive count expected (the axis is logarithmic)",
                           path, lineno, p.size);
        if (p.sd < 0) return af_errf(e, "%s:%d: sd %g: not negative expected", path, lineno, p.sd);
        p.task = intern(&c->tasks, &c->ntasks, f[col[C_TASK]]);
        p.method = intern(&c->methods, &c->nmethods, f[col[C_METHOD]]);
        for (int i = 0; i < c->n; i++)
            if (c->p[i].task == p.task && c->p[i].method == p.method && c->p[i].size == p.size)
                return af_errf(e, "%s:%d: %s, %s, size %g: a second row", path, lineno,
                               c->tasks[p.task], c->methods[p.method], p.size);
        c->p = af_realloc(c->p, (size_t)(c->n + 1) * sizeof *c->p);
        c->p[c->n++] = p;
    }
    if (!ncols) return af_errf(e, "%s: empty (a header expected)", path);
    if (!c->n) return af_errf(e, "%s: a header and no rows", path);
    return 0;
}

int curves_read(curves *c, const char *path, af_err *e) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    if (af_read_file(path, &text, &len, e)) return -1;
    if (memchr(text, 0, len)) {
        free(text);
        return af_errf(e, "%s: a NUL byte: not a TSV text file", path);
    }
    int rc = parse(c, path, text, e);
    free(text);
    if (rc) curves_free(c);
    return rc;
}

void curves_free(curves *c) {
    for (int i = 0; i < c->ntasks; i++) free(c->tasks[i]);
    for (int i = 0; i < c->nmethods; i++) free(c->methods[i]);
    free(c->tasks), free(c->methods), free(c->p);
    memset(c, 0, sizeof *c);
}

/* ---- layout -----------------------------------------------------------------------------------
 */

#define TH CANVAS_TEXT_H
enum { MARGIN = 16, PAD = 8, TICK = 5, PLOT_W = 380, PLOT_H = 260, MARK = 7, SWATCH = 28 };
static const uint8_t WHITE[3] = {255, 255, 255}, INK[3] = {34, 34, 34}, GRID[3] = {225, 225, 225};

/* The label column left of a plot holds "0.55" and the y axis's name above it. */
static int label_w(void) {
    return canvas_text_w("0.55") + PAD + TICK;
}
static int panel_w(void) {
    return label_w() + PLOT_W + 2 * MARGIN;
}
/* title, axis name, plot, tick labels, x axis's name */
static int panel_h(void) {
    return TH + PAD + TH + 2 * PAD + PLOT_H + TICK + PAD + TH + PAD + TH;
}

static void y_range(const curves *c, int t, curves_panel *p) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < c->n; i++)
        if (c->p[i].task == t) {
            lo = fmin(lo, c->p[i].mean - c->p[i].sd);
            hi = fmax(hi, c->p[i].mean + c->p[i].sd);
        }
    /* The smallest round step that needs at most 6 grid intervals. */
    static const double steps[] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10};
    int k = 0;
    for (; k < (int)(sizeof steps / sizeof *steps) - 1; k++)
        if (ceil(hi / steps[k] - 1e-9) - floor(lo / steps[k] + 1e-9) <= 6) break;
    p->y_step = steps[k];
    p->y_min = floor(lo / p->y_step + 1e-9) * p->y_step;
    p->y_max = ceil(hi / p->y_step - 1e-9) * p->y_step;
    if (p->y_max - p->y_min < p->y_step / 2) p->y_max = p->y_min + p->y_step;
}

static void x_range(const curves *c, int t, curves_panel *p) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < c->n; i++)
        if (c->p[i].task == t) lo = fmin(lo, c->p[i].size), hi = fmax(hi, c->p[i].size);
    double a = log10(lo), b = log10(hi), pad = b > a ? (b - a) * 0.08 : 0.3;
    p->lx_min = a - pad, p->lx_max = b + pad;
}

void curves_layout(const curves *c, int t, int *width, int *height, curves_panel *p) {
    int legend_w = MARGIN;
    for (int m = 0; m < c->nmethods; m++)
        legend_w += SWATCH + PAD + canvas_text_w(c->methods[m]) + 3 * PAD;
    *width = c->ntasks * panel_w();
    if (legend_w + MARGIN > *width) *width = legend_w + MARGIN;
    *height = MARGIN + panel_h() + 2 * PAD + TH + MARGIN;
    p->x0 = t * panel_w() + MARGIN + label_w();
    p->y0 = MARGIN + TH + PAD + TH + 2 * PAD;
    p->w = PLOT_W, p->h = PLOT_H;
    x_range(c, t, p);
    y_range(c, t, p);
}

int curves_px(const curves_panel *p, double size) {
    return p->x0 + (int)lround((log10(size) - p->lx_min) / (p->lx_max - p->lx_min) * (p->w - 1));
}

int curves_py(const curves_panel *p, double acc) {
    return p->y0 + (int)lround((p->y_max - acc) / (p->y_max - p->y_min) * (p->h - 1));
}

void curves_colour(int m, unsigned char rgb[3]) {
    static const uint8_t okabe_ito[7][3] = {{0, 114, 178}, {230, 159, 0},   {0, 158, 115},
                                            {213, 94, 0},  {204, 121, 167}, {86, 180, 233},
                                            {240, 228, 66}};
    memcpy(rgb, okabe_ito[m % 7], 3);
}

/* ---- drawing ----------------------------------------------------------------------------------
 */

static int by_size(const void *a, const void *b) {
    double x = ((const curve_point *)a)->size, y = ((const curve_point *)b)->size;
    return (x > y) - (x < y);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void draw_axes(canvas *cv, const curves *c, int t, const curves_panel *p) {
    char s[32];
    const char *fmt = p->y_step < 0.1 ? "%.2f" : p->y_step < 1 ? "%.1f" : "%.0f";
    int nsteps = (int)lround((p->y_max - p->y_min) / p->y_step);
    for (int k = 0; k <= nsteps; k++) {
        double v = p->y_min + k * p->y_step;
        int y = curves_py(p, v);
        canvas_rect(cv, p->x0, y, p->w, 1, GRID);
        canvas_rect(cv, p->x0 - TICK, y, TICK, 1, INK);
        snprintf(s, sizeof s, fmt, v);
        canvas_text(cv, p->x0 - TICK - PAD / 2 - canvas_text_w(s), y - FONT_H * CANVAS_SCALE / 2, s,
                    INK);
    }
    canvas_rect(cv, p->x0, p->y0, 1, p->h, INK);
    canvas_rect(cv, p->x0, p->y0 + p->h - 1, p->w, 1, INK);
    /* Ticks at the sizes measured, labelled unless a label would run into the previous one. */
    int last_right = -1000, ndone = 0;
    double *done = af_malloc((size_t)c->n * sizeof *done);
    for (int i = 0; i < c->n; i++) {
        int seen = c->p[i].task != t;
        for (int k = 0; k < ndone && !seen; k++) seen = done[k] == c->p[i].size;
        if (!seen) done[ndone++] = c->p[i].size;
    }
    qsort(done, (size_t)ndone, sizeof *done, by_value);
    for (int k = 0; k < ndone; k++) {
        int x = curves_px(p, done[k]);
        canvas_rect(cv, x, p->y0 + p->h, 1, TICK, INK);
        snprintf(s, sizeof s, "%g", done[k]);
        int tx = x - canvas_text_w(s) / 2;
        if (tx > last_right + PAD) {
            canvas_text(cv, tx, p->y0 + p->h + TICK + PAD, s, INK);
            last_right = tx + canvas_text_w(s);
        }
    }
    free(done);
    const char *xl = "training examples (log scale)", *yl = "dev accuracy";
    canvas_text(cv, p->x0 + (p->w - canvas_text_w(xl)) / 2, p->y0 + p->h + TICK + PAD + TH + PAD,
                xl, INK);
    canvas_text(cv, p->x0 - label_w(), p->y0 - 2 * PAD - TH, yl, INK);
    canvas_text(cv, p->x0 + (p->w - canvas_text_w(c->tasks[t])) / 2, MARGIN, c->tasks[t], INK);
}

/* Method m's curve in panel p: lines first, then error bars and markers over them. Methods are
 * nudged apart horizontally so that overlapping error bars stay readable. */
static void draw_method(canvas *cv, const curves *c, int t, int m, const curves_panel *p) {
    curve_point *pts = af_malloc((size_t)c->n * sizeof *pts);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->p[i].task == t && c->p[i].method == m) pts[n++] = c->p[i];
    qsort(pts, (size_t)n, sizeof *pts, by_size);
    uint8_t col[3];
    curves_colour(m, col);
    int dodge = (int)lround((m - (c->nmethods - 1) / 2.0) * 4);
    for (int k = 1; k < n; k++)
        canvas_line(cv, curves_px(p, pts[k - 1].size) + dodge, curves_py(p, pts[k - 1].mean),
                    curves_px(p, pts[k].size) + dodge, curves_py(p, pts[k].mean), 2, col);
    for (int k = 0; k < n; k++) {
        int x = curves_px(p, pts[k].size) + dodge, y = curves_py(p, pts[k].mean);
        int ylo = curves_py(p, pts[k].mean - pts[k].sd),
            yhi = curves_py(p, pts[k].mean + pts[k].sd);
        canvas_line(cv, x, ylo, x, yhi, 1, col);
        canvas_rect(cv, x - 3, ylo, 7, 1, col);
        canvas_rect(cv, x - 3, yhi, 7, 1, col);
        canvas_rect(cv, x - MARK / 2, y - MARK / 2, MARK, MARK, col);
    }
    free(pts);
}

static void draw_legend(canvas *cv, const curves *c, int y) {
    int x = MARGIN;
    for (int m = 0; m < c->nmethods; m++) {
        uint8_t col[3];
        curves_colour(m, col);
        canvas_rect(cv, x, y + FONT_H * CANVAS_SCALE / 2 - 1, SWATCH, 2, col);
        canvas_rect(cv, x + SWATCH / 2 - MARK / 2, y + FONT_H * CANVAS_SCALE / 2 - MARK / 2, MARK,
                    MARK, col);
        x += SWATCH + PAD;
        canvas_text(cv, x, y, c->methods[m], INK);
        x += canvas_text_w(c->methods[m]) + 3 * PAD;
    }
}

int curves_png(const char *path, const curves *c, af_err *e) {
    if (!c->n) return af_errf(e, "%s: no learning curve to draw", path);
    int W, H;
    curves_panel p;
    curves_layout(c, 0, &W, &H, &p);
    canvas cv = canvas_new(W, H, WHITE);
    for (int t = 0; t < c->ntasks; t++) {
        curves_layout(c, t, &W, &H, &p);
        draw_axes(&cv, c, t, &p);
        for (int m = 0; m < c->nmethods; m++) draw_method(&cv, c, t, m, &p);
    }
    draw_legend(&cv, c, MARGIN + panel_h() + 2 * PAD);
    int rc = png_write_rgb(path, cv.rgb, W, H, e);
    canvas_free(&cv);
    return rc;
}
