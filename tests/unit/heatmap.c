/* heatmap: viridis end points and order, the terminal forms (shades, 256 colours, 24-bit), CSV
 * quoting, JSON, and a PNG whose cells carry the colour of their values. */
#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

#include "heatmap.h"
#include "pngread.h"
#include "tap.h"

static char *render(const heatmap *h, int n, int colour, int csv) {
    FILE *f = tmpfile();
    if (csv)
        heatmap_csv(f, h, n, "layer", "adapter");
    else
        heatmap_print(f, h, n, "layer", "adapter", colour);
    long len = ftell(f);
    rewind(f);
    char *s = calloc((size_t)len + 1, 1);
    if (fread(s, 1, (size_t)len, f) != (size_t)len) s[0] = 0;
    fclose(f);
    return s;
}

static double luma(double t) {
    uint8_t c[3];
    heatmap_colour(t, c);
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

int main(void) {
    uint8_t c[3];
    heatmap_colour(0, c);
    ok(c[0] == 68 && c[1] == 1 && c[2] == 84, "0 is viridis' first colour");
    heatmap_colour(1, c);
    ok(c[0] == 253 && c[1] == 231 && c[2] == 37, "1 is viridis' last colour");
    uint8_t d[3];
    heatmap_colour(-3, c), heatmap_colour(NAN, d);
    ok(c[0] == 68 && d[0] == 68 && d[2] == 84, "below 0 and NaN clamp to 0");
    int rising = 1;
    for (int k = 1; k <= 100; k++) rising &= luma(k / 100.0) >= luma((k - 1) / 100.0) - 1e-9;
    ok(rising, "lightness rises from 0 to 1");

    heatmap h;
    heatmap_init(&h, 2, 2);
    heatmap_label(&h.row_labels[0], "0");
    heatmap_label(&h.row_labels[1], "1");
    heatmap_label(&h.col_labels[0], "mnli");
    heatmap_label(&h.col_labels[1], "a,\"b\"\x1b[31m");
    heatmap_label(&h.title, "t");
    double v[] = {0.05, 0.95, 0.5, 0.3};
    memcpy(h.v, v, sizeof v);
    ok(!strchr(h.col_labels[1], '\x1b'), "control characters in labels are replaced");

    char *s = render(&h, 1, HM_PLAIN, 0);
    ok(strstr(s, "\n0         0.050    ██ 0.950\n") && strstr(s, "\n1      ▒▒ 0.500    ░░ 0.300\n"),
       "plain: shades beside the values, columns as wide as their labels");
    ok(!strchr(s, '\x1b'), "plain: no escape sequences");
    ok(strstr(s, "legend:") != NULL, "plain: a legend");
    free(s);
    s = render(&h, 1, HM_256, 0);
    ok(strstr(s, "\x1b[48;5;53m") && strstr(s, " 0.950 \x1b[0m"), "256 colours: backgrounds");
    free(s);
    s = render(&h, 1, HM_TRUECOLOR, 0);
    ok(strstr(s, "\x1b[48;2;70;19;101m\x1b[38;2;255;255;255m 0.050 \x1b[0m") != NULL,
       "24-bit colour, light text on a dark cell");
    free(s);

    heatmap_label(&h.group, "pos");
    s = render(&h, 1, 0, 1);
    ok(!strncmp(s, "group,layer,adapter,value\npos,0,mnli,0.05\n", 42), "CSV: header, then cells");
    ok(strstr(s, "pos,0,\"a,\"\"b\"\"?[31m\",0.95\n") != NULL, "CSV: quoting");
    free(s);

    cJSON *j = heatmap_json(&h, 1);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "maps"), 0);
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rows")) == 2 &&
           !strcmp(cJSON_GetObjectItem(m, "group")->valuestring, "pos") &&
           cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "values"), 1), 1)
                   ->valuedouble == 0.3,
       "JSON: rows, group, values");
    cJSON_Delete(j);

    char dir[] = "/tmp/af-heatmap.XXXXXX", path[64];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/h.png", dir);
    af_err e;
    ok(heatmap_png(path, &h, 1, "layer", "adapter", &e) == 0, "writes a PNG");
    int w = 0, hh = 0;
    const char *why;
    uint8_t *px = png_read_rgb(path, &w, &hh, &why);
    ok(px != NULL, "a valid PNG (%s)", why ? why : "ok");
    /* each value's colour fills a block of its cell: count pixels of every cell colour */
    int found = 1;
    for (int k = 0; px && k < 4; k++) {
        heatmap_colour(v[k], c);
        long n = 0;
        for (long p = 0; p < (long)w * hh; p++) n += !memcmp(px + 3 * p, c, 3);
        if (n < 200) found = 0, diag("value %g: %ld pixels of its colour", v[k], n);
    }
    ok(found, "every cell is drawn in its colour");
    free(px);
    unlink(path);
    rmdir(dir);
    ok(heatmap_png(path, &h, 0, "layer", "adapter", &e) == -1, "no map, no image: %s", e.msg);
    heatmap_free(&h);
    return done_testing();
}
