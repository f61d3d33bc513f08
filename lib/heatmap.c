/* heatmap.c: terminal, CSV, JSON and PNG renderings of a heatmap; see heatmap.h. */
#include "heatmap.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "font.h"
#include "png.h"

void heatmap_init(heatmap *h, int rows, int cols) {
    memset(h, 0, sizeof *h);
    h->rows = rows, h->cols = cols;
    h->row_labels = af_calloc(rows ? rows : 1, sizeof(char *));
    h->col_labels = af_calloc(cols ? cols : 1, sizeof(char *));
    h->v = af_calloc((size_t)(rows ? rows : 1) * (cols ? cols : 1), sizeof(double));
}

void heatmap_free(heatmap *h) {
    for (int i = 0; i < h->rows; i++) free(h->row_labels[i]);
    for (int j = 0; j < h->cols; j++) free(h->col_labels[j]);
    free(h->row_labels), free(h->col_labels), free(h->v);
    free(h->title), free(h->group), free(h->level);
    memset(h, 0, sizeof *h);
}

void heatmap_label(char **slot, const char *s) {
    free(*slot);
    *slot = af_strdup(s ? s : "");
    for (char *p = *slot; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
}

/* matplotlib's viridis at t = 0, 0.1, ..., 1 */
static const uint8_t viridis[11][3] = {
    {68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},  {42, 120, 142}, {33, 145, 140},
    {34, 168, 132}, {68, 191, 112}, {122, 209, 81}, {189, 223, 38}, {253, 231, 37}};

void heatmap_colour(double t, uint8_t rgb[3]) {
    if (!(t > 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    double x = t * 10;
    int i = (int)x;
    if (i > 9) i = 9;
    double f = x - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (uint8_t)lround(viridis[i][c] + f * (viridis[i + 1][c] - viridis[i][c]));
}

/* Dark text on light cells, light text on dark ones. */
static int dark_text(const uint8_t rgb[3]) {
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140;
}

/* ---- terminal -------------------------------------------------------------------------------- */

/* Display columns of UTF-8 text (one per code point: the labels are names, not CJK prose). */
static int width(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void pad(FILE *f, const char *s, int w) {
    fputs(s, f);
    for (int k = width(s); k < w; k++) fputc(' ', f);
}

static const char *const shades[] = {" ", "░", "▒", "▓", "█"};

static int shade_level(double v) {
    if (!(v > 0)) return 0; /* NaN too */
    return v >= 0.8 ? 4 : (int)(v * 5);
}

/* A cell's number; "-" where there is none (no line had a weight there). */
static void cell_text(char *num, size_t n, double v) {
    if (isfinite(v))
        snprintf(num, n, "%.3f", v);
    else
        snprintf(num, n, "-");
}

static int xterm256(const uint8_t rgb[3]) {
    /* the 6×6×6 cube of xterm's palette: levels 0, 95, 135, 175, 215, 255 */
    int idx[3];
    for (int c = 0; c < 3; c++) idx[c] = rgb[c] < 48 ? 0 : rgb[c] < 115 ? 1 : (rgb[c] - 35) / 40;
    return 16 + 36 * idx[0] + 6 * idx[1] + idx[2];
}

static void set_colour(FILE *f, const uint8_t bg[3], int colour) {
    int dark = dark_text(bg);
    if (colour == HM_TRUECOLOR)
        fprintf(f, "\033[48;2;%d;%d;%dm\033[38;2;%s", bg[0], bg[1], bg[2],
                dark ? "0;0;0m" : "255;255;255m");
    else
        fprintf(f, "\033[48;5;%dm\033[38;5;%dm", xterm256(bg), dark ? 16 : 231);
}

static void print_cell(FILE *f, double v, int colour, int cw) {
    char num[32];
    cell_text(num, sizeof num, v);
    if (colour == HM_PLAIN) {
        const char *s = shades[shade_level(v)];
        fprintf(f, "%s%s %s", s, s, num);
        for (int k = 3 + width(num); k < cw; k++) fputc(' ', f);
        return;
    }
    uint8_t rgb[3];
    heatmap_colour(v, rgb);
    set_colour(f, rgb, colour);
    fprintf(f, " %s ", num);
    fputs("\033[0m", f);
    for (int k = 2 + width(num); k < cw; k++) fputc(' ', f);
}

static void print_legend(FILE *f, int colour) {
    if (colour == HM_PLAIN) {
        fputs("legend:", f);
        for (int k = 0; k < 5; k++)
            fprintf(f, "  %s%s %s%.1f", shades[k], shades[k], k ? "≥ " : "< ", k ? k * 0.2 : 0.2);
        fputc('\n', f);
        return;
    }
    fputs("legend: 0 ", f);
    for (int k = 0; k < 20; k++) {
        uint8_t rgb[3];
        heatmap_colour((k + 0.5) / 20, rgb);
        set_colour(f, rgb, colour);
        fputc(' ', f);
    }
    fputs("\033[0m 1\n", f);
}

void heatmap_print(FILE *f, const heatmap *maps, int n, const char *row_axis, const char *col_axis,
                   int colour) {
    for (int m = 0; m < n; m++) {
        const heatmap *h = &maps[m];
        int rw = width(row_axis), cw = 9;
        for (int i = 0; i < h->rows; i++)
            rw = width(h->row_labels[i]) > rw ? width(h->row_labels[i]) : rw;
        for (int j = 0; j < h->cols; j++)
            cw = width(h->col_labels[j]) + 2 > cw ? width(h->col_labels[j]) + 2 : cw;
        if (m) fputc('\n', f);
        if (h->title) fprintf(f, "%s\n", h->title);
        fprintf(f, "%*s  %s\n", rw, "", col_axis);
        pad(f, row_axis, rw);
        fputs("  ", f);
        for (int j = 0; j < h->cols; j++) pad(f, h->col_labels[j], j + 1 < h->cols ? cw : 0);
        fputc('\n', f);
        for (int i = 0; i < h->rows; i++) {
            pad(f, h->row_labels[i], rw);
            fputs("  ", f);
            for (int j = 0; j < h->cols; j++)
                print_cell(f, h->v[(size_t)i * h->cols + j], colour, j + 1 < h->cols ? cw : 0);
            fputc('\n', f);
        }
    }
    if (n) print_legend(f, colour);
}

/* ---- for programs ---------------------------------------------------------------------------- */

static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void heatmap_csv(FILE *f, const heatmap *maps, int n, const char *row_axis, const char *col_axis) {
    int levels = 0;
    for (int m = 0; m < n; m++) levels |= maps[m].level != NULL;
    fprintf(f, "%sgroup,%s,%s,value\n", levels ? "level," : "", row_axis, col_axis);
    for (int m = 0; m < n; m++) {
        const heatmap *h = &maps[m];
        for (int i = 0; i < h->rows; i++)
            for (int j = 0; j < h->cols; j++) {
                if (levels) {
                    csv_field(f, h->level ? h->level : "");
                    fputc(',', f);
                }
                csv_field(f, h->group ? h->group : "");
                fputc(',', f);
                csv_field(f, h->row_labels[i]);
                fputc(',', f);
                csv_field(f, h->col_labels[j]);
                double v = h->v[(size_t)i * h->cols + j];
                if (isfinite(v))
                    fprintf(f, ",%.9g\n", v);
                else
                    fputs(",\n", f); /* no weight: an empty field */
            }
    }
}

cJSON *heatmap_json(const heatmap *maps, int n) {
    cJSON *j = cJSON_CreateObject();
    cJSON *rows = cJSON_AddArrayToObject(j, "rows"), *cols = cJSON_AddArrayToObject(j, "columns");
    for (int i = 0; n && i < maps[0].rows; i++)
        cJSON_AddItemToArray(rows, cJSON_CreateString(maps[0].row_labels[i]));
    for (int k = 0; n && k < maps[0].cols; k++)
        cJSON_AddItemToArray(cols, cJSON_CreateString(maps[0].col_labels[k]));
    cJSON *ms = cJSON_AddArrayToObject(j, "maps");
    for (int m = 0; m < n; m++) {
        const heatmap *h = &maps[m];
        cJSON *o = cJSON_CreateObject();
        if (h->title)
            cJSON_AddStringToObject(o, "title", h->title);
        else
            cJSON_AddNullToObject(o, "title");
        if (h->group)
            cJSON_AddStringToObject(o, "group", h->group);
        else
            cJSON_AddNullToObject(o, "group");
        if (h->level) {
            cJSON_AddStringToObject(o, "level", h->level);
            cJSON *c = cJSON_AddArrayToObject(o, "columns");
            for (int k = 0; k < h->cols; k++)
                cJSON_AddItemToArray(c, cJSON_CreateString(h->col_labels[k]));
        }
        cJSON_AddNumberToObject(o, "n", (double)h->n);
        cJSON *vs = cJSON_AddArrayToObject(o, "values");
        for (int i = 0; i < h->rows; i++) {
            cJSON *r = cJSON_CreateArray();
            for (int k = 0; k < h->cols; k++) {
                double v = h->v[(size_t)i * h->cols + k];
                cJSON_AddItemToArray(r, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
            }
            cJSON_AddItemToArray(vs, r);
        }
        cJSON_AddItemToArray(ms, o);
    }
    return j;
}

/* ---- image ----------------------------------------------------------------------------------- */

#define SCALE CANVAS_SCALE
#define TEXT_H CANVAS_TEXT_H

enum { MARGIN = 16, PAD = 8, CELL_H = TEXT_H + 2 * PAD, LEGEND_W = 240, GAP = 2 };
static const uint8_t WHITE[3] = {255, 255, 255}, INK[3] = {34, 34, 34}, BLACK[3] = {0, 0, 0};

typedef struct {
    int lw, cw, height; /* row-label column, cell width, panel height */
} layout;

static layout panel_layout(const heatmap *h, const char *row_axis) {
    layout L;
    L.lw = canvas_text_w(row_axis);
    for (int i = 0; i < h->rows; i++)
        L.lw = canvas_text_w(h->row_labels[i]) > L.lw ? canvas_text_w(h->row_labels[i]) : L.lw;
    L.lw += 2 * PAD;
    L.cw = canvas_text_w("0.000");
    for (int j = 0; j < h->cols; j++)
        L.cw = canvas_text_w(h->col_labels[j]) > L.cw ? canvas_text_w(h->col_labels[j]) : L.cw;
    L.cw += 2 * PAD;
    L.height = (h->title ? TEXT_H + 2 * PAD : 0) + 2 * (TEXT_H + PAD) + PAD + h->rows * CELL_H;
    return L;
}

static void draw_panel(canvas *c, int y, const heatmap *h, const layout *L, const char *row_axis,
                       const char *col_axis) {
    int x0 = MARGIN + L->lw, gw = h->cols * L->cw;
    if (h->title) {
        canvas_text(c, MARGIN, y + PAD, h->title, INK);
        y += TEXT_H + 2 * PAD;
    }
    canvas_text(c, x0 + (gw - canvas_text_w(col_axis)) / 2, y, col_axis, INK);
    y += TEXT_H + PAD;
    canvas_text(c, MARGIN + L->lw - PAD - canvas_text_w(row_axis), y, row_axis, INK);
    for (int j = 0; j < h->cols; j++)
        canvas_text(c, x0 + j * L->cw + (L->cw - canvas_text_w(h->col_labels[j])) / 2, y,
                    h->col_labels[j], INK);
    y += TEXT_H + 2 * PAD;
    for (int i = 0; i < h->rows; i++) {
        int yy = y + i * CELL_H;
        int ty = yy + (CELL_H - FONT_H * SCALE) / 2; /* digits and capitals centred */
        canvas_text(c, MARGIN + L->lw - PAD - canvas_text_w(h->row_labels[i]), ty, h->row_labels[i],
                    INK);
        for (int j = 0; j < h->cols; j++) {
            double v = h->v[(size_t)i * h->cols + j];
            uint8_t rgb[3];
            char num[32];
            heatmap_colour(v, rgb);
            canvas_rect(c, x0 + j * L->cw + GAP / 2, yy + GAP / 2, L->cw - GAP, CELL_H - GAP, rgb);
            cell_text(num, sizeof num, v);
            canvas_text(c, x0 + j * L->cw + (L->cw - canvas_text_w(num)) / 2, ty, num,
                        dark_text(rgb) ? BLACK : WHITE);
        }
    }
}

static void draw_legend(canvas *c, int y, int x0) {
    canvas_text(c, x0 - PAD - canvas_text_w("weight"), y, "weight", INK);
    for (int k = 0; k < LEGEND_W; k++) {
        uint8_t rgb[3];
        heatmap_colour((k + 0.5) / LEGEND_W, rgb);
        canvas_rect(c, x0 + k, y, 1, TEXT_H, rgb);
    }
    static const char *const ticks[] = {"0", "0.25", "0.5", "0.75", "1"};
    for (int t = 0; t < 5; t++) {
        int x = x0 + t * (LEGEND_W - 1) / 4;
        canvas_rect(c, x, y + TEXT_H, 1, PAD / 2, INK);
        int tx = x - canvas_text_w(ticks[t]) / 2;
        if (t == 0) tx = x;
        if (t == 4) tx = x - canvas_text_w(ticks[t]) + 1;
        canvas_text(c, tx, y + TEXT_H + PAD, ticks[t], INK);
    }
}

int heatmap_png(const char *path, const heatmap *maps, int n, const char *row_axis,
                const char *col_axis, af_err *e) {
    if (n < 1) return af_errf(e, "%s: no heatmap to draw", path);
    layout *L = af_calloc(n, sizeof *L);
    int W = 0, H = MARGIN, lw = 0;
    for (int m = 0; m < n; m++) {
        L[m] = panel_layout(&maps[m], row_axis);
        lw = L[m].lw > lw ? L[m].lw : lw;
    }
    for (int m = 0; m < n; m++) {
        L[m].lw = lw; /* one left column, so stacked maps line up */
        int w = MARGIN + lw + maps[m].cols * L[m].cw + MARGIN;
        if (maps[m].title && MARGIN + canvas_text_w(maps[m].title) + MARGIN > w)
            w = MARGIN + canvas_text_w(maps[m].title) + MARGIN;
        W = w > W ? w : W;
        H += L[m].height + (m ? 2 * PAD : 0);
    }
    int legend_x =
        MARGIN + (lw > canvas_text_w("weight") + PAD ? lw : canvas_text_w("weight") + 2 * PAD);
    W = legend_x + LEGEND_W + MARGIN + canvas_text_w("1") > W
            ? legend_x + LEGEND_W + MARGIN + canvas_text_w("1")
            : W;
    int legend_y = H + 2 * PAD;
    H = legend_y + 2 * TEXT_H + PAD + MARGIN;
    canvas c = canvas_new(W, H, WHITE);
    for (int m = 0, y = MARGIN; m < n; y += L[m].height + 2 * PAD, m++)
        draw_panel(&c, y, &maps[m], &L[m], row_axis, col_axis);
    draw_legend(&c, legend_y, legend_x);
    int rc = png_write_rgb(path, c.rgb, W, H, e);
    canvas_free(&c);
    free(L);
    return rc;
}
