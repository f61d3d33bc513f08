/* zip.c: reading and writing the zip container of PyTorch checkpoints; see zip.h.
 * Record layouts: PKWARE's APPNOTE.TXT §4.3 (local header, central directory, end records). */
#include "zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64 0x06064b50u
#define SIG_LOC64 0x07064b50u

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p) {
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Whether [off, off + len) lies inside an image of `size` bytes, without overflow. */
static int inside(uint64_t off, uint64_t len, size_t size) {
    return off <= size && len <= size - off;
}

/* The end-of-central-directory record: the last one whose comment reaches exactly to the end
 * (a comment could itself contain the signature). */
static int find_end(const zip_archive *z, size_t *at, af_err *e) {
    if (z->size < 22)
        return af_errf(e, "%s: %zu bytes: too short for a zip archive", z->path, z->size);
    size_t lo = z->size > 22 + 65535 ? z->size - 22 - 65535 : 0;
    for (size_t i = z->size - 22 + 1; i-- > lo;) {
        if (rd32(z->data + i) == SIG_END && i + 22 + rd16(z->data + i + 20) == z->size) {
            *at = i;
            return 0;
        }
    }
    return af_errf(e, "%s: no zip end-of-central-directory record (truncated, or not a zip)",
                   z->path);
}

/* Reads the zip64 extra field of a central entry for the values that are 0xFFFFFFFF. */
static int zip64_extra(const zip_archive *z, const unsigned char *x, size_t xlen, uint64_t *usize,
                       uint64_t *csize, uint64_t *off, const char *name, af_err *e) {
    size_t i = 0;
    while (i + 4 <= xlen) {
        uint16_t id = rd16(x + i), len = rd16(x + i + 2);
        if (i + 4 + len > xlen)
            return af_errf(e, "%s: %s: extra field runs past its entry", z->path, name);
        if (id == 1) {
            const unsigned char *p = x + i + 4;
            size_t left = len;
            uint64_t *want[3] = {usize, csize, off};
            for (int k = 0; k < 3; k++) {
                if (*want[k] != 0xFFFFFFFFu) continue;
                if (left < 8)
                    return af_errf(e, "%s: %s: zip64 extra field too short", z->path, name);
                *want[k] = rd64(p);
                p += 8, left -= 8;
            }
            return 0;
        }
        i += 4 + len;
    }
    if (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *off == 0xFFFFFFFFu)
        return af_errf(e, "%s: %s: zip64 sizes announced but no zip64 extra field", z->path, name);
    return 0;
}

static int parse_entry(zip_archive *z, const unsigned char *c, size_t left, size_t *used,
                       zip_entry *ze, af_err *e) {
    if (left < 46 || rd32(c) != SIG_CENTRAL)
        return af_errf(e, "%s: central directory entry %d is corrupt", z->path, z->n + 1);
    uint16_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28), xlen = rd16(c + 30),
             clen = rd16(c + 32);
    if (46 + (size_t)nlen + xlen + clen > left)
        return af_errf(e, "%s: central directory entry %d runs past the directory", z->path,
                       z->n + 1);
    char *name = af_malloc(nlen + 1);
    memcpy(name, c + 46, nlen);
    name[nlen] = 0;
    ze->name = name;
    if (memchr(name, 0, nlen))
        return af_errf(e, "%s: entry %d: NUL in its name", z->path, z->n + 1);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), off = rd32(c + 42);
    if (zip64_extra(z, c + 46 + nlen, xlen, &usize, &csize, &off, name, e)) return -1;
    if (flags & 1) return af_errf(e, "%s: %s: encrypted entries are not supported", z->path, name);
    if (method != 0 && method != 8)
        return af_errf(e, "%s: %s: compression method %u (only stored and deflated are read)",
                       z->path, name, method);
    /* deflate expands at most 1032:1; a larger claim is a bomb or a lie */
    if (method == 8 && usize / 1032 > csize + 1)
        return af_errf(e, "%s: %s: %llu bytes claimed from %llu deflated", z->path, name,
                       (unsigned long long)usize, (unsigned long long)csize);
    if (method == 0 && csize != usize)
        return af_errf(e, "%s: %s: stored entry with %llu bytes compressed but %llu uncompressed",
                       z->path, name, (unsigned long long)csize, (unsigned long long)usize);
    /* The local header repeats name and extra with lengths of its own. */
    if (!inside(off, 30, z->size) || rd32(z->data + off) != SIG_LOCAL)
        return af_errf(e, "%s: %s: local header at offset %llu missing or outside the file",
                       z->path, name, (unsigned long long)off);
    uint64_t data = off + 30 + rd16(z->data + off + 26) + rd16(z->data + off + 28);
    if (!inside(data, csize, z->size))
        return af_errf(e,
                       "%s: %s: %llu bytes at offset %llu run past the end of the file (%zu "
                       "bytes): truncated?",
                       z->path, name, (unsigned long long)csize, (unsigned long long)data, z->size);
    ze->method = method;
    ze->crc = rd32(c + 16);
    ze->csize = csize;
    ze->usize = usize;
    ze->offset = data;
    *used = 46 + (size_t)nlen + xlen + clen;
    return 0;
}

int zip_parse(zip_archive *z, const void *data, size_t size, const char *path, af_err *e) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->data = data;
    z->size = size;
    size_t end = 0;
    if (find_end(z, &end, e)) return -1;
    const unsigned char *r = z->data + end;
    uint64_t count = rd16(r + 10), cdsize = rd32(r + 12), cdoff = rd32(r + 16);
    if (rd16(r + 4) != 0 || rd16(r + 6) != 0)
        return af_errf(e, "%s: multi-disk zip archives are not supported", path);
    /* PyTorch writes the zip64 records whatever the size; the locator sits just before. */
    if (end >= 20 && rd32(z->data + end - 20) == SIG_LOC64) {
        uint64_t at = rd64(z->data + end - 20 + 8);
        if (!inside(at, 56, end - 20) || rd32(z->data + at) != SIG_END64)
            return af_errf(e, "%s: zip64 end record missing or outside the file", path);
        count = rd64(z->data + at + 32);
        cdsize = rd64(z->data + at + 40);
        cdoff = rd64(z->data + at + 48);
    }
    if (!inside(cdoff, cdsize, end))
        return af_errf(e,
                       "%s: central directory (%llu bytes at %llu) outside the file: "
                       "truncated or corrupt",
                       path, (unsigned long long)cdsize, (unsigned long long)cdoff);
    if (count > ZIP_MAX_ENTRIES || count > cdsize / 46)
        return af_errf(e, "%s: %llu entries announced in a %llu-byte central directory", path,
                       (unsigned long long)count, (unsigned long long)cdsize);
    z->e = af_calloc(count ? count : 1, sizeof *z->e);
    size_t at = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t used = 0;
        int rc = parse_entry(z, z->data + cdoff + at, cdsize - at, &used, &z->e[z->n], e);
        z->n++; /* the name (if any) is freed by zip_close */
        if (rc) {
            zip_close(z);
            return -1;
        }
        at += used;
    }
    return 0;
}

void zip_close(zip_archive *z) {
    for (int i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    z->e = NULL;
    z->n = 0;
}

const zip_entry *zip_find(const zip_archive *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (z->e[i].name && !strcmp(z->e[i].name, name)) return &z->e[i];
    return NULL;
}

int zip_read(const zip_archive *z, const zip_entry *ze, const unsigned char **out, size_t *len,
             void **owned, size_t max, af_err *e) {
    *owned = NULL;
    if (ze->usize > max)
        return af_errf(e, "%s: %s: %llu bytes, more than the %zu expected", z->path, ze->name,
                       (unsigned long long)ze->usize, max);
    const unsigned char *src = z->data + ze->offset;
    if (ze->method == 0) {
        *out = src;
    } else {
        unsigned char *buf = af_malloc(ze->usize ? ze->usize : 1);
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -15) != Z_OK) {
            free(buf);
            return af_errf(e, "%s: %s: zlib initialisation failed", z->path, ze->name);
        }
        /* zlib counts in uInt: entries above 4 GiB are not deflated checkpoints af reads */
        s.next_in = (unsigned char *)src;
        s.avail_in = (uInt)(ze->csize > 0xFFFFFFFFu ? 0xFFFFFFFFu : ze->csize);
        s.next_out = buf;
        s.avail_out = (uInt)(ze->usize > 0xFFFFFFFFu ? 0xFFFFFFFFu : ze->usize);
        int zr = inflate(&s, Z_FINISH);
        uint64_t got = s.total_out;
        inflateEnd(&s);
        if (zr != Z_STREAM_END || got != ze->usize) {
            free(buf);
            return af_errf(e, "%s: %s: deflated data is corrupt", z->path, ze->name);
        }
        *out = buf;
        *owned = buf;
    }
    /* crc32 takes uInt lengths: feed it in pieces */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t at = 0; at < ze->usize;) {
        uInt k = (uInt)(ze->usize - at > (1u << 30) ? (1u << 30) : ze->usize - at);
        crc = crc32(crc, *out + at, k);
        at += k;
    }
    if ((uint32_t)crc != ze->crc) {
        free(*owned);
        *owned = NULL;
        return af_errf(e, "%s: %s: CRC-32 mismatch (%08x stored, %08x computed): corrupt", z->path,
                       ze->name, ze->crc, (uint32_t)crc);
    }
    *len = ze->usize;
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------- */

static void wr16(unsigned char *p, unsigned v) {
    p[0] = v & 0xFF, p[1] = v >> 8 & 0xFF;
}

static void wr32(unsigned char *p, uint32_t v) {
    wr16(p, v & 0xFFFF), wr16(p + 2, v >> 16);
}

static int put(zip_writer *z, const void *p, size_t n, af_err *e) {
    if (n && fwrite(p, 1, n, z->f) != n) return af_errf(e, "write failed");
    z->at += n;
    return 0;
}

void zip_writer_init(zip_writer *z, FILE *f) {
    memset(z, 0, sizeof *z);
    z->f = f;
}

int zip_writer_add(zip_writer *z, const char *name, const void *data, size_t len, af_err *e) {
    size_t nlen = strlen(name);
    if (nlen > 0xFFFF || len >= 0xFFFFFFFFu || z->at + len >= 0xFFFFFFFFu)
        return af_errf(e, "%s: too large for a zip archive without zip64", name);
    /* Pad with an extra field (id "FB", as PyTorch) so the data starts on a 64-byte boundary:
     * readers that map storages in place want them aligned. */
    uint64_t data_at = z->at + 30 + nlen + 4;
    size_t pad = (64 - data_at % 64) % 64;
    unsigned char h[30] = {0};
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)len);
    wr32(h, SIG_LOCAL);
    wr16(h + 4, 20);      /* version needed: 2.0 */
    wr16(h + 6, 1 << 11); /* names are UTF-8 */
    wr32(h + 14, crc);
    wr32(h + 18, (uint32_t)len);
    wr32(h + 22, (uint32_t)len);
    wr16(h + 26, (unsigned)nlen);
    wr16(h + 28, (unsigned)(4 + pad));
    unsigned char x[4 + 64];
    x[0] = 'F', x[1] = 'B';
    wr16(x + 2, (unsigned)pad);
    memset(x + 4, 'Z', pad);
    if (z->n == z->cap) {
        z->cap = z->cap ? 2 * z->cap : 16;
        z->w = af_realloc(z->w, z->cap * sizeof *z->w);
    }
    z->w[z->n++] = (struct zip_wentry){af_strdup(name), crc, len, z->at};
    if (put(z, h, 30, e) || put(z, name, nlen, e) || put(z, x, 4 + pad, e) || put(z, data, len, e))
        return -1;
    return 0;
}

int zip_writer_finish(zip_writer *z, af_err *e) {
    uint64_t cd = z->at;
    for (int i = 0; i < z->n; i++) {
        const struct zip_wentry *w = &z->w[i];
        unsigned char c[46] = {0};
        size_t nlen = strlen(w->name);
        wr32(c, SIG_CENTRAL);
        wr16(c + 4, 20);
        wr16(c + 6, 20);
        wr16(c + 8, 1 << 11);
        wr32(c + 16, w->crc);
        wr32(c + 20, (uint32_t)w->size);
        wr32(c + 24, (uint32_t)w->size);
        wr16(c + 28, (unsigned)nlen);
        wr32(c + 42, (uint32_t)w->header);
        if (put(z, c, 46, e) || put(z, w->name, nlen, e)) return -1;
    }
    if (z->n > 0xFFFF || z->at >= 0xFFFFFFFFu)
        return af_errf(e, "too many entries for a zip archive without zip64");
    unsigned char r[22] = {0};
    wr32(r, SIG_END);
    wr16(r + 8, (unsigned)z->n);
    wr16(r + 10, (unsigned)z->n);
    wr32(r + 12, (uint32_t)(z->at - cd));
    wr32(r + 16, (uint32_t)cd);
    return put(z, r, 22, e);
}

void zip_writer_free(zip_writer *z) {
    for (int i = 0; i < z->n; i++) free(z->w[i].name);
    free(z->w);
    memset(z, 0, sizeof *z);
}
