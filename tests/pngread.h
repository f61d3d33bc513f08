/* pngread.h: reads back the PNGs lib/png.c writes (8-bit RGB, filter 0 rows), checking the
 * signature, every chunk's CRC and the IHDR fields, for the unit tests. */
#ifndef PNGREAD_H
#define PNGREAD_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t pr_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Returns the pixels (w·h·3 bytes, caller frees) or NULL with why set. */
static uint8_t *png_read_rgb(const char *path, int *w, int *h, const char **why) {
    FILE *f = fopen(path, "rb");
    if (!f) return *why = "cannot open", NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(n > 0 ? (size_t)n : 1), *z = NULL, *raw = NULL, *rgb = NULL;
    size_t zn = 0;
    int ok = fread(d, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *why = NULL;
    if (!ok || n < 8 || memcmp(d, sig, 8)) *why = "signature";
    long pos = 8;
    int chunks = 0, iend = 0;
    while (!*why && pos + 12 <= n && !iend) {
        uint32_t len = pr_be32(d + pos);
        if (pos + 12 + (long)len > n) {
            *why = "chunk past the end";
            break;
        }
        const uint8_t *type = d + pos + 4, *body = d + pos + 8;
        if (crc32(0L, type, 4 + len) != pr_be32(body + len))
            *why = "CRC";
        else if (chunks == 0 && (memcmp(type, "IHDR", 4) || len != 13))
            *why = "IHDR not first";
        else if (!memcmp(type, "IHDR", 4)) {
            *w = (int)pr_be32(body), *h = (int)pr_be32(body + 4);
            if (body[8] != 8 || body[9] != 2 || body[10] || body[11] || body[12])
                *why = "IHDR fields";
        } else if (!memcmp(type, "IDAT", 4)) {
            z = realloc(z, zn + len + 1);
            memcpy(z + zn, body, len);
            zn += len;
        } else if (!memcmp(type, "IEND", 4))
            iend = 1;
        chunks++;
        pos += 12 + (long)len;
    }
    if (!*why && (!iend || pos != n)) *why = "IEND not last";
    if (!*why) {
        uLongf rn = (uLongf)*h * ((uLongf)*w * 3 + 1);
        raw = malloc(rn + 1);
        uLongf got = rn + 1;
        if (uncompress(raw, &got, z, (uLong)zn) != Z_OK || got != rn) *why = "IDAT size";
    }
    if (!*why) {
        rgb = malloc((size_t)*w * *h * 3);
        for (int y = 0; y < *h && !*why; y++) {
            const uint8_t *row = raw + (size_t)y * ((size_t)*w * 3 + 1);
            if (row[0] != 0) *why = "filter";
            memcpy(rgb + (size_t)y * *w * 3, row + 1, (size_t)*w * 3);
        }
    }
    free(d), free(z), free(raw);
    if (*why) {
        free(rgb);
        return NULL;
    }
    return rgb;
}
#endif
