/* png.c: see png.h. */
#include "png.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    const char *path;
    const uint8_t *rgb;
    int w, h;
} image;

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static int chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t len[4], crc[4];
    be32(len, n);
    uLong c = crc32(0L, (const Bytef *)type, 4);
    if (n) c = crc32(c, data, n);
    be32(crc, (uint32_t)c);
    return fwrite(len, 1, 4, f) != 4 || fwrite(type, 1, 4, f) != 4 ||
                   (n && fwrite(data, 1, n, f) != n) || fwrite(crc, 1, 4, f) != 4
               ? -1
               : 0;
}

static int write_png(FILE *f, void *ctx, af_err *e) {
    const image *im = ctx;
    size_t stride = (size_t)im->w * 3 + 1, raw_n = stride * (size_t)im->h;
    uint8_t *raw = af_malloc(raw_n);
    for (int y = 0; y < im->h; y++) {
        raw[y * stride] = 0;
        memcpy(raw + y * stride + 1, im->rgb + (size_t)y * im->w * 3, (size_t)im->w * 3);
    }
    uLongf zn = compressBound(raw_n);
    uint8_t *z = af_malloc(zn);
    int zrc = compress2(z, &zn, raw, raw_n, 9);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return af_errf(e, "%s: zlib compress2 failed (%d)", im->path, zrc);
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)im->w);
    be32(ihdr + 4, (uint32_t)im->h);
    ihdr[8] = 8;  /* bits per sample */
    ihdr[9] = 2;  /* truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering, per-row filter byte */
    ihdr[12] = 0; /* no interlace */
    int rc = fwrite(sig, 1, 8, f) != 8 || chunk(f, "IHDR", ihdr, 13) ||
             chunk(f, "IDAT", z, (uint32_t)zn) || chunk(f, "IEND", NULL, 0);
    free(z);
    return rc ? af_errf(e, "%s: write error", im->path) : 0;
}

int png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, af_err *e) {
    if (w < 1 || h < 1 || (int64_t)w * h > (int64_t)1 << 28)
        return af_errf(e, "%s: image size %d x %d is not in 1..2^28 pixels", path, w, h);
    image im = {path, rgb, w, h};
    return af_write_atomic(path, write_png, &im, e);
}
