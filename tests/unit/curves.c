/* curves: the study's TSV read (columns by name, errors naming file, line and column), the
 * log-scaled layout, and a PNG in which every point's marker, error bar and legend entry are
 * where and what they should be. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "curves.h"
#include "pngread.h"
#include "tap.h"

static char dir[] = "/tmp/af-curves.XXXXXX";

static const char *put(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* The error for a TSV, or "" when it reads. */
static const char *read_error(const char *text) {
    static af_err e;
    curves c;
    if (!curves_read(&c, put("bad.tsv", text), &e)) {
        curves_free(&c);
        return "";
    }
    return e.msg;
}

static int is(const uint8_t *px, int w, int x, int y, const uint8_t col[3]) {
    return !memcmp(px + 3 * ((size_t)y * w + x), col, 3);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    /* columns in another order than the study's, and one more */
    const char *tsv = "method\textra\ttask\tsd\tsize\tmean\tseeds\n"
                      "single\tx\tfortune\t0.02\t50\t0.40\t5\n"
                      "single\tx\tfortune\t0\t500\t0.60\t5\n"
                      "single\tx\tfortune\t0.01\t5000\t0.70\t5\n"
                      "fusion\tx\tfortune\t0.05\t50\t0.50\t5\n"
                      "fusion\tx\tfortune\t0.01\t5000\t0.66\t5\n"
                      "single\tx\trt\t0.01\t100\t0.55\t5\r\n"
                      "\n";
    curves c;
    af_err e;
    const char *path = put("study.tsv", tsv);
    ok(curves_read(&c, path, &e) == 0, "reads a study TSV (%s)", e.msg);
    ok(c.ntasks == 2 && !strcmp(c.tasks[1], "rt") && c.nmethods == 2 &&
           !strcmp(c.methods[1], "fusion") && c.n == 6,
       "tasks and methods in order of appearance, every row");
    ok(c.p[2].size == 5000 && c.p[2].mean == 0.70 && c.p[2].sd == 0.01 && c.p[5].sd == 0.01,
       "columns found by name (a CR at a line's end is not part of it)");

    static const struct {
        const char *tsv, *want, *what;
    } bad[] = {
        {"task\tmethod\tsize\tmean\n", "bad.tsv:1: no column 'sd'", "a missing column is named"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t50\t0.5\t0.1\na\tb\t100\tx\t0\n",
         "bad.tsv:3: column mean: a number expected, 'x' found", "not a number"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t0\t0.5\t0.1\n", "bad.tsv:2: size 0",
         "a size of 0 has no place on a log axis"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t5\t0.5\t-0.1\n", "bad.tsv:2: sd", "a negative sd"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t5\t0.5\n", "bad.tsv:2: 5 columns expected",
         "a short row"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t5\t0.5\t0\na\tb\t5\t0.6\t0\n",
         "bad.tsv:3: a, b, size 5: a second row", "a repeated point"},
        {"task\tmethod\tsize\tmean\tsd\n", "no rows", "a header alone"},
        {"", "empty", "an empty file"},
        {"task\tmethod\tsize\tmean\tsd\na\tb\t5\tnan\t0\n", "column mean",
         "NaN is not an accuracy"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *msg = read_error(bad[i].tsv);
        ok(strstr(msg, bad[i].want) != NULL, "%s: %s", bad[i].what, msg);
    }

    int W, H, W1, H1;
    curves_panel p, q;
    curves_layout(&c, 0, &W, &H, &p);
    curves_layout(&c, 1, &W1, &H1, &q);
    ok(W == W1 && H == H1 && q.x0 >= p.x0 + p.w, "panels side by side, task by task");
    int x50 = curves_px(&p, 50), x500 = curves_px(&p, 500), x5000 = curves_px(&p, 5000);
    ok(abs(x500 - (x50 + x5000) / 2) <= 1 && x50 > p.x0 && x5000 < p.x0 + p.w - 1,
       "x is logarithmic: 500 halfway between 50 and 5000 (%d %d %d), all inside", x50, x500,
       x5000);
    ok(p.y_min <= 0.40 - 0.02 + 1e-12 && p.y_max >= 0.70 + 0.01 - 1e-12 &&
           curves_py(&p, 0.70) < curves_py(&p, 0.40) && curves_py(&p, p.y_max) == p.y0 &&
           curves_py(&p, p.y_min) == p.y0 + p.h - 1,
       "y holds every mean +- sd (%g to %g), higher is up", p.y_min, p.y_max);

    const char *png = put("c.png", "");
    ok(curves_png(png, &c, &e) == 0, "draws a PNG (%s)", e.msg);
    int w = 0, h = 0;
    const char *why;
    uint8_t *px = png_read_rgb(png, &w, &h, &why);
    ok(px && w == W && h == H, "a valid PNG of the layout's size (%s, %d x %d)", why ? why : "ok",
       w, h);
    uint8_t single[3], fusion[3];
    curves_colour(0, single), curves_colour(1, fusion);
    ok(memcmp(single, fusion, 3) != 0, "methods have different colours");
    /* two methods are nudged 2 pixels apart; markers are 7 wide, so each covers its point */
    int marks = px != NULL;
    for (int i = 0; px && i < c.n; i++) {
        const curves_panel *pp = c.p[i].task ? &q : &p;
        uint8_t col[3];
        curves_colour(c.p[i].method, col);
        marks &= is(px, w, curves_px(pp, c.p[i].size), curves_py(pp, c.p[i].mean), col);
    }
    ok(marks, "a marker of the method's colour at every point");
    /* fusion at 50: mean 0.50, sd 0.05: the bar reaches both ends and stops there */
    int x = x50 + 2, top = curves_py(&p, 0.55), bottom = curves_py(&p, 0.45);
    ok(px && is(px, w, x, top, fusion) && is(px, w, x, bottom, fusion) &&
           is(px, w, x, (top + curves_py(&p, 0.5)) / 2, fusion) && !is(px, w, x, top - 3, fusion) &&
           !is(px, w, x, bottom + 3, fusion),
       "an error bar spans mean - sd to mean + sd");
    /* the curve between two points: the line's midpoint is drawn */
    int lx = (x50 - 2 + x500 - 2) / 2, ly = (curves_py(&p, 0.40) + curves_py(&p, 0.60)) / 2;
    int near = 0;
    for (int d = -2; px && d <= 2; d++) near |= is(px, w, lx, ly + d, single);
    ok(near, "a line joins a method's points");
    long legend = 0;
    for (int y = p.y0 + p.h; px && y < h; y++)
        for (int xx = 0; xx < w; xx++) legend += is(px, w, xx, y, fusion);
    ok(legend >= 49, "the legend below the plots has a swatch in each colour (%ld pixels)", legend);
    free(px);
    curves_free(&c);
    ok(c.n == 0 && c.tasks == NULL, "curves_free empties");
    curves empty = {0};
    ok(curves_png(png, &empty, &e) == -1 && strstr(e.msg, "no learning curve"),
       "nothing to draw is an error: %s", e.msg);
    unlink(png);
    unlink(put("study.tsv", "")), unlink(put("bad.tsv", ""));
    rmdir(dir);
    return done_testing();
}
