/* lines.c: the line reader every text input shares (declared in jsonl.h).
 *
 * zlib's gzread passes plain files through unchanged, so one code path reads gzip and plain
 * input alike. Lines are cut with memchr over our own buffer rather than gzgets, so a line may
 * hold NUL bytes and be of any length. */
#include "jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1 << 16)

struct af_lines {
    gzFile gz;
    char *name;
    char *buf; /* raw bytes read but not yet returned: buf[pos, len) */
    size_t pos, len;
    char *line; /* the current line, NUL-terminated */
    size_t linecap;
    long lineno;
    int eof;
};

int af_lines_open(af_lines **lp, const char *path, af_err *e) {
    *lp = NULL;
    int stdin_ = !path || strcmp(path, "-") == 0;
    const char *name = stdin_ ? "stdin" : path;
    /* gzclose closes the descriptor; dup keeps stdin usable for whoever owns it. */
    int fd = stdin_ ? dup(0) : open(path, O_RDONLY);
    if (fd < 0) return af_errf(e, "%s: %s", name, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return af_errf(e, "%s: cannot open: %s", name, strerror(errno ? errno : ENOMEM));
    }
    gzbuffer(gz, 1 << 17);
    af_lines *l = af_calloc(1, sizeof *l);
    l->gz = gz;
    l->name = af_strdup(name);
    l->buf = af_malloc(CHUNK);
    l->linecap = 256;
    l->line = af_malloc(l->linecap);
    *lp = l;
    return 0;
}

/* zlib's message starts with its own name for the stream ("<fd:3>: "); ours is better. */
static int read_error(af_lines *l, af_err *e) {
    int zerr;
    const char *msg = gzerror(l->gz, &zerr);
    if (zerr == Z_ERRNO)
        msg = strerror(errno);
    else if (strncmp(msg, "<fd:", 4) == 0 && strstr(msg, ": "))
        msg = strstr(msg, ": ") + 2;
    return af_errf(e, "%s:%ld: read error: %s", l->name, l->lineno + 1, msg);
}

/* Refills buf; returns bytes read, 0 at end of input, -1 on error. */
static int fill(af_lines *l, af_err *e) {
    int n = gzread(l->gz, l->buf, CHUNK);
    int zerr;
    /* A truncated gzip stream shows as end of input with the error state set. */
    if (n < 0 || (n == 0 && (gzerror(l->gz, &zerr), zerr != Z_OK))) return read_error(l, e);
    l->pos = 0;
    l->len = (size_t)n;
    return n;
}

static void append(af_lines *l, size_t *n, const char *p, size_t k) {
    if (*n + k + 1 > l->linecap) {
        while (*n + k + 1 > l->linecap) l->linecap *= 2;
        l->line = af_realloc(l->line, l->linecap);
    }
    memcpy(l->line + *n, p, k);
    *n += k;
}

long af_lines_next(af_lines *l, char **line, af_err *e) {
    size_t n = 0;
    int partial = 0; /* bytes of an unterminated line are pending */
    for (;;) {
        if (l->pos == l->len) {
            int got = l->eof ? 0 : fill(l, e);
            if (got < 0) return -2;
            if (got == 0) {
                l->eof = 1;
                if (!partial) return -1;
                break; /* a last line without its newline */
            }
        }
        const char *p = l->buf + l->pos;
        size_t avail = l->len - l->pos;
        const char *nl = memchr(p, '\n', avail);
        if (nl) {
            append(l, &n, p, (size_t)(nl - p));
            l->pos += (size_t)(nl - p) + 1;
            break;
        }
        append(l, &n, p, avail);
        l->pos = l->len;
        partial = 1;
    }
    if (n > 0 && l->line[n - 1] == '\r') n--;
    l->line[n] = 0;
    l->lineno++;
    *line = l->line;
    return (long)n;
}

long af_lines_lineno(const af_lines *l) {
    return l->lineno;
}

const char *af_lines_name(const af_lines *l) {
    return l->name;
}

void af_lines_close(af_lines *l) {
    if (!l) return;
    gzclose(l->gz);
    free(l->name);
    free(l->buf);
    free(l->line);
    free(l);
}
