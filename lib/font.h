/* font.h: a 5×7 bitmap font for text in images (af-inspect's PNG heatmaps): digits, both cases
 * of the Latin letters and common punctuation; any other byte draws as '?'. */
#ifndef AF_FONT_H
#define AF_FONT_H

/* Pixels per glyph (plus one column of spacing when drawn) and rows per glyph, which capitals
 * and digits fill; g, p, q and y reach FONT_DESCENT rows below the baseline, so a line of text
 * is FONT_H + FONT_DESCENT rows high. */
#define FONT_W 5
#define FONT_H 7
#define FONT_DESCENT 2

/* The glyph of c: FONT_H rows of FONT_W characters, '#' for ink and '.' for paper, to be drawn
 * *dy rows lower than the others (FONT_DESCENT for letters with descenders, else 0). */
const char *const *font_glyph(unsigned char c, int *dy);

#endif
