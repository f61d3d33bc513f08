/* tests/unit/outbuf.c: integers, arrays and JSON strings, across buffer flushes. */
#include "outbuf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

int main(void) {
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    ob_writer w;
    ob_init(&w, f, 16); /* raised to the 4096 minimum */
    ob_long(&w, 0);
    ob_char(&w, ' ');
    ob_long(&w, -7);
    ob_char(&w, ' ');
    ob_long(&w, LONG_MIN);
    ob_char(&w, ' ');
    ob_long(&w, LONG_MAX);
    ob_char(&w, ' ');
    int v[] = {101, 0, -1, 30521};
    ob_ints(&w, v, 4);
    ob_ints(&w, v, 0);
    ob_json_string(&w, "a\"b\\c\n\t\x01\x1f\xc3\xa9\0z", 13);
    ok(ob_flush(&w) == 0, "flush");
    fflush(f);
    const char *want = "0 -7 -9223372036854775808 9223372036854775807 [101,0,-1,30521][]"
                       "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\xc3\xa9\\u0000z\"";
    ok(len == strlen(want) && !memcmp(mem, want, len), "numbers, arrays, escapes: %.*s", (int)len,
       mem);
    /* many small writes and one large one: order kept across flushes */
    size_t before = len;
    for (int i = 0; i < 3000; i++) ob_long(&w, i);
    char big[10000];
    memset(big, 'x', sizeof big);
    ob_raw(&w, big, sizeof big);
    ob_str(&w, "end");
    ob_flush(&w);
    fflush(f);
    size_t digits = 10 + 90 * 2 + 900 * 3 + 2000 * 4;
    ok(len == before + digits + sizeof big + 3 && !memcmp(mem + len - 3, "end", 3) &&
           mem[before + digits] == 'x' && !memcmp(mem + before, "0123456789101112", 16),
       "order across flushes (%zu bytes)", len - before);
    ob_free(&w);
    fclose(f);
    free(mem);
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        ob_init(&w, full, 4096);
        ob_str(&w, "x");
        setvbuf(full, NULL, _IONBF, 0);
        ok(ob_flush(&w) < 0, "a failed write is reported");
        ob_free(&w);
        fclose(full);
    }
    return done_testing();
}
