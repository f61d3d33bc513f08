/* png.h: a minimal PNG writer (8-bit RGB, no interlace), enough for af-inspect's heatmaps.
 *
 * PNG (ISO/IEC 15948, RFC 2083): the 8-byte signature, then chunks of u32 BE length, 4-byte type,
 * data and a CRC-32 over type and data: IHDR (size, bit depth 8, colour type 2), one IDAT
 * holding the zlib stream of the scanlines, each prefixed with its filter byte (0: none; the
 * images are flat colour, which deflate compresses well unfiltered), and IEND. */
#ifndef AF_PNG_H
#define AF_PNG_H

#include <stdint.h>

#include "af.h"

/* rgb: w·h pixels, 3 bytes each, rows top to bottom. Written atomically (af_write_atomic). */
int png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, af_err *e);

#endif
