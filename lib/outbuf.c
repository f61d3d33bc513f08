/* outbuf.c: buffered JSON-lines output; see outbuf.h. */
#include "outbuf.h"

#include <stdlib.h>
#include <string.h>

#include "af.h"

void ob_init(ob_writer *w, FILE *f, size_t cap) {
    w->f = f;
    w->cap = cap < 4096 ? 4096 : cap;
    w->buf = af_malloc(w->cap);
    w->n = 0;
    w->err = 0;
}

void ob_free(ob_writer *w) {
    free(w->buf);
    w->buf = NULL;
}

int ob_flush(ob_writer *w) {
    if (w->n && fwrite(w->buf, 1, w->n, w->f) != w->n) w->err = 1;
    w->n = 0;
    return w->err ? -1 : 0;
}

/* Makes room for k more bytes (k <= cap). */
static inline void room(ob_writer *w, size_t k) {
    if (w->n + k > w->cap) ob_flush(w);
}

void ob_raw(ob_writer *w, const char *s, size_t n) {
    if (n > w->cap / 2) {
        ob_flush(w);
        if (fwrite(s, 1, n, w->f) != n) w->err = 1;
        return;
    }
    room(w, n);
    memcpy(w->buf + w->n, s, n);
    w->n += n;
}

void ob_str(ob_writer *w, const char *s) {
    ob_raw(w, s, strlen(s));
}

void ob_char(ob_writer *w, char c) {
    room(w, 1);
    w->buf[w->n++] = c;
}

static inline void put_long(ob_writer *w, long v) {
    char tmp[24];
    int k = 0;
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    do tmp[k++] = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) tmp[k++] = '-';
    while (k) w->buf[w->n++] = tmp[--k];
}

void ob_long(ob_writer *w, long v) {
    room(w, 24);
    put_long(w, v);
}

void ob_ints(ob_writer *w, const int *v, int n) {
    ob_char(w, '[');
    for (int i = 0; i < n; i++) {
        room(w, 24);
        if (i) w->buf[w->n++] = ',';
        put_long(w, v[i]);
    }
    ob_char(w, ']');
}

void ob_json_string(ob_writer *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    ob_char(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        room(w, 6);
        if (c >= 0x20 && c != '"' && c != '\\') {
            w->buf[w->n++] = (char)c;
            continue;
        }
        w->buf[w->n++] = '\\';
        switch (c) {
        case '"':
            w->buf[w->n++] = '"';
            break;
        case '\\':
            w->buf[w->n++] = '\\';
            break;
        case '\n':
            w->buf[w->n++] = 'n';
            break;
        case '\t':
            w->buf[w->n++] = 't';
            break;
        case '\r':
            w->buf[w->n++] = 'r';
            break;
        case '\b':
            w->buf[w->n++] = 'b';
            break;
        case '\f':
            w->buf[w->n++] = 'f';
            break;
        default:
            memcpy(w->buf + w->n, "u00", 3);
            w->n += 3;
            w->buf[w->n++] = hex[c >> 4];
            w->buf[w->n++] = hex[c & 15];
        }
    }
    ob_char(w, '"');
}
