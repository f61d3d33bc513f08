/* canvas: rectangles clip at the edges, lines join their end points without gaps at any slope
 * and have the pen's width, text is as wide as canvas_text_w says. */
#include <string.h>

#include "canvas.h"
#include "tap.h"

static const uint8_t BG[3] = {255, 255, 255}, RED[3] = {200, 0, 0};

static int at(const canvas *c, int x, int y) {
    return !memcmp(c->rgb + 3 * ((size_t)y * c->w + x), RED, 3);
}

static long count(const canvas *c) {
    long n = 0;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++) n += at(c, x, y);
    return n;
}

int main(void) {
    canvas c = canvas_new(40, 30, BG);
    ok(count(&c) == 0 && !memcmp(c.rgb, BG, 3), "a new canvas is its background");
    canvas_rect(&c, -5, -5, 10, 10, RED);
    canvas_rect(&c, 35, 25, 100, 100, RED);
    ok(count(&c) == 25 + 25 && at(&c, 0, 0) && at(&c, 39, 29), "rectangles clip at every edge");

    /* every slope: each column (or row, for steep lines) between the ends has exactly one pixel */
    static const int ends[][4] = {{2, 3, 37, 11}, {5, 28, 9, 1}, {30, 2, 3, 27}, {4, 4, 4, 20}};
    int all = 1;
    for (int k = 0; k < 4; k++) {
        canvas_rect(&c, 0, 0, 40, 30, BG);
        const int *e = ends[k];
        canvas_line(&c, e[0], e[1], e[2], e[3], 1, RED);
        int dx = abs(e[2] - e[0]), dy = abs(e[3] - e[1]);
        int good = at(&c, e[0], e[1]) && at(&c, e[2], e[3]) && count(&c) == (dx > dy ? dx : dy) + 1;
        if (!good) diag("line %d: %ld pixels", k, count(&c));
        all &= good;
    }
    ok(all, "thin lines: both ends, one pixel per step of the longer axis, no gaps");
    canvas_rect(&c, 0, 0, 40, 30, BG);
    canvas_line(&c, 5, 10, 25, 10, 3, RED);
    ok(count(&c) == (21 + 2) * 3 && at(&c, 4, 9) && at(&c, 26, 11) && !at(&c, 5, 12),
       "a 3-pixel pen: 3 rows, a square pen reaching one pixel past each end");

    canvas_free(&c);
    c = canvas_new(200, 30, BG);
    canvas_text(&c, 0, 0, "Ag1", RED);
    int right = 0;
    for (int y = 0; y < c.h; y++)
        for (int x = 0; x < c.w; x++)
            if (at(&c, x, y) && x + 1 > right) right = x + 1;
    ok(right <= canvas_text_w("Ag1") && right > canvas_text_w("Ag1") - CANVAS_ADV,
       "text ends within its measured width (%d of %d)", right, canvas_text_w("Ag1"));
    ok(canvas_text_w("") == 0 && canvas_text_w("ab") == 2 * CANVAS_ADV - CANVAS_SCALE,
       "widths: nothing is 0 wide; no spacing after the last character");
    canvas_free(&c);
    ok(c.rgb == NULL, "canvas_free forgets the pixels");
    return done_testing();
}
