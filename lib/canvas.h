/* canvas.h: an RGB image in memory to draw af-inspect's pictures on (heatmaps, learning
 * curves): filled rectangles, lines, and text in the 5×7 font of font.h, each font pixel a
 * CANVAS_SCALE × CANVAS_SCALE block so that labels stay legible in a PNG viewed at 1:1.
 * Drawing clips at the edges; nothing here allocates but canvas_new. */
#ifndef AF_CANVAS_H
#define AF_CANVAS_H

#include <stdint.h>

#include "font.h"

typedef struct {
    int w, h;
    uint8_t *rgb; /* [h, w, 3] */
} canvas;

#define CANVAS_SCALE 2                           /* image pixels per font pixel */
#define CANVAS_ADV ((FONT_W + 1) * CANVAS_SCALE) /* advance per character */
#define CANVAS_TEXT_H ((FONT_H + FONT_DESCENT) * CANVAS_SCALE)

/* w × h pixels of colour bg; canvas_free releases them. */
canvas canvas_new(int w, int h, const uint8_t bg[3]);
void canvas_free(canvas *c);
void canvas_rect(canvas *c, int x, int y, int w, int h, const uint8_t col[3]);
/* A line from (x0, y0) to (x1, y1), `thick` pixels wide (a square pen). */
void canvas_line(canvas *c, int x0, int y0, int x1, int y1, int thick, const uint8_t col[3]);
/* Width in pixels of s drawn by canvas_text. */
int canvas_text_w(const char *s);
/* s with its top-left corner at (x, y); capitals and digits fill FONT_H font rows from y. */
void canvas_text(canvas *c, int x, int y, const char *s, const uint8_t col[3]);

#endif
