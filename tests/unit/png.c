/* png: what png_write_rgb writes reads back exactly (signature, CRCs, IHDR, the pixels). */
#include <string.h>
#include <unistd.h>

#include "png.h"
#include "pngread.h"
#include "tap.h"

int main(void) {
    char dir[] = "/tmp/af-png.XXXXXX", path[64];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/a.png", dir);
    int W = 37, H = 11;
    uint8_t *img = malloc((size_t)W * H * 3);
    for (int i = 0; i < W * H * 3; i++) img[i] = (uint8_t)(i * 7 + i / 3);
    af_err e;
    ok(png_write_rgb(path, img, W, H, &e) == 0, "writes a %d x %d image", W, H);
    int w = 0, h = 0;
    const char *why;
    uint8_t *back = png_read_rgb(path, &w, &h, &why);
    ok(back != NULL, "reads back (%s)", why ? why : "valid");
    ok(w == W && h == H, "size %d x %d", w, h);
    ok(back && !memcmp(back, img, (size_t)W * H * 3), "the same pixels");
    free(back);

    /* the reader catches damage, so the checks above can fail */
    FILE *f = fopen(path, "r+b");
    fseek(f, 20, SEEK_SET);
    fputc('x', f);
    fclose(f);
    back = png_read_rgb(path, &w, &h, &why);
    ok(!back && why && !strcmp(why, "CRC"), "a changed byte breaks its chunk's CRC (%s)",
       why ? why : "not noticed");
    free(back);

    ok(png_write_rgb(path, img, 0, 5, &e) == -1 && strstr(e.msg, "a.png") && strstr(e.msg, "0 x 5"),
       "an empty image is refused, naming the file: %s", e.msg);
    snprintf(path, sizeof path, "%s/no/such/dir.png", dir);
    ok(png_write_rgb(path, img, W, H, &e) == -1 && strstr(e.msg, "dir.png"),
       "an unwritable path is reported: %s", e.msg);
    free(img);
    snprintf(path, sizeof path, "%s/a.png", dir);
    unlink(path);
    rmdir(dir);
    return done_testing();
}
