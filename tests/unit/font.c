/* font: every glyph is 5 × 7 of '#' and '.', the characters it draws are all distinct, anything
 * else draws as '?', and only g, p, q, y hang below the line. */
#include <string.h>

#include "font.h"
#include "tap.h"

static const char drawn[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            " .,:;-_+=()[]/\\%!'\"#<>*&|@?";

int main(void) {
    int shape_ok = 1, dy_ok = 1;
    for (int c = 0; c < 256; c++) {
        int dy;
        const char *const *g = font_glyph((unsigned char)c, &dy);
        for (int r = 0; r < FONT_H; r++)
            if (strlen(g[r]) != FONT_W || strspn(g[r], "#.") != FONT_W) shape_ok = 0;
        if ((dy != 0) != (c == 'g' || c == 'p' || c == 'q' || c == 'y')) dy_ok = 0;
    }
    ok(shape_ok, "every glyph has %d rows of %d '#' or '.'", FONT_H, FONT_W);
    ok(dy_ok, "descenders: g, p, q, y only");
    int distinct = 1, dy;
    for (size_t i = 0; i < strlen(drawn); i++)
        for (size_t j = i + 1; j < strlen(drawn); j++) {
            const char *const *a = font_glyph((unsigned char)drawn[i], &dy);
            const char *const *b = font_glyph((unsigned char)drawn[j], &dy);
            int same = 1;
            for (int r = 0; r < FONT_H; r++) same &= !strcmp(a[r], b[r]);
            if (same) {
                diag("'%c' and '%c' look alike", drawn[i], drawn[j]);
                distinct = 0;
            }
        }
    ok(distinct, "the %zu drawn characters are all distinct", strlen(drawn));
    ok(font_glyph('~', &dy) == font_glyph('?', &dy) &&
           font_glyph(0xe9, &dy) == font_glyph('?', &dy),
       "others draw as '?'");
    int blank = 1;
    const char *const *sp = font_glyph(' ', &dy);
    for (int r = 0; r < FONT_H; r++) blank &= !strchr(sp[r], '#');
    ok(blank, "space is blank");
    return done_testing();
}
