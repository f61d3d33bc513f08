/* outbuf.h: a fast buffered writer for JSON lines: integers by hand (no printf), strings with
 * JSON escapes, one large buffer flushed with fwrite. Errors are sticky: check ob_flush. */
#ifndef AF_OUTBUF_H
#define AF_OUTBUF_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char *buf;
    size_t n, cap;
    int err; /* a write failed */
} ob_writer;

void ob_init(ob_writer *w, FILE *f, size_t cap);
void ob_free(ob_writer *w); /* does not flush */
int ob_flush(ob_writer *w); /* 0, or -1 if any write failed */
void ob_raw(ob_writer *w, const char *s, size_t n);
void ob_str(ob_writer *w, const char *s); /* raw, NUL-terminated */
void ob_char(ob_writer *w, char c);
void ob_long(ob_writer *w, long v);
void ob_ints(ob_writer *w, const int *v, int n);            /* [1,2,3] */
void ob_json_string(ob_writer *w, const char *s, size_t n); /* "..." with escapes */

#endif
