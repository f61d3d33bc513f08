/* font.h: a 5×7 bitmap font for text in images (af-inspect's PNG heatmaps): digits, both cases
 * of the Latin letters and common punctuation; any other byte draws as '?'. */
#ifndef AF_FONT_H
#define AF_FONT_H

#define FONT_W 5       /* pixels per glyph, plus one column of spacing when drawn */
#define FONT_H 7       /* rows per glyph; capitals and digits fill them */
#define FONT_DESCENT 2 /* rows below the baseline that g, p, q, y reach: a line of text is
                          FONT_H + FONT_DESCENT rows high */

/* The glyph of c: FONT_H rows of FONT_W characters, '#' for ink and '.' for paper, to be drawn
 * *dy rows lower than the others (FONT_DESCENT for letters with descenders, else 0). */
const char *const *font_glyph(unsigned char c, int *dy);

#endif
