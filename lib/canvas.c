/* canvas.c: rectangles, lines and text on an RGB image; see canvas.h. */
#include "canvas.h"

#include <stdlib.h>
#include <string.h>

#include "af.h"

canvas canvas_new(int w, int h, const uint8_t bg[3]) {
    canvas c = {w, h, af_malloc((size_t)w * h * 3 + 1)};
    canvas_rect(&c, 0, 0, w, h, bg);
    return c;
}

void canvas_free(canvas *c) {
    free(c->rgb);
    c->rgb = NULL;
}

void canvas_rect(canvas *c, int x, int y, int w, int h, const uint8_t col[3]) {
    for (int yy = y < 0 ? 0 : y; yy < y + h && yy < c->h; yy++)
        for (int xx = x < 0 ? 0 : x; xx < x + w && xx < c->w; xx++)
            memcpy(c->rgb + ((size_t)yy * c->w + xx) * 3, col, 3);
}

/* Bresenham's walk, stamping the pen at every step: no gaps whatever the slope. */
void canvas_line(canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t col[3]) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, off = (thick - 1) / 2;
    for (;;) {
        canvas_rect(c, x0 - off, y0 - off, thick, thick, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

int canvas_text_w(const char *s) {
    int n = (int)strlen(s);
    return n ? n * CANVAS_ADV - CANVAS_SCALE : 0;
}

void canvas_text(canvas *c, int x, int y, const char *s, const uint8_t col[3]) {
    for (; *s; s++, x += CANVAS_ADV) {
        int dy;
        const char *const *g = font_glyph((unsigned char)*s, &dy);
        for (int r = 0; r < FONT_H; r++)
            for (int k = 0; k < FONT_W; k++)
                if (g[r][k] == '#')
                    canvas_rect(c, x + k * CANVAS_SCALE, y + (r + dy) * CANVAS_SCALE, CANVAS_SCALE,
                                CANVAS_SCALE, col);
    }
}
