/* lines.c: the line reader every text input shares (declared in jsonl.h).
 *
 * Input is read with read(2), so a line that has arrived is returned at once even when the
 * writer at the other end of a pipe pauses (gzread would wait for a whole 64 KiB block first, and
 * a pipeline would see nothing). The first bytes decide the format: gzip's magic number means
 * the stream goes through zlib's inflate (members one after another, as gzip -d reads them);
 * anything else is passed through. Lines are cut with memchr over our own buffer, so a line may
 * hold NUL bytes and be of any length. */
#include "jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1 << 16)

struct af_lines {
    int fd;
    char *name;
    char *buf; /* decoded bytes read but not yet returned: buf[pos, len) */
    size_t pos, len;
    char *line; /* the current line, NUL-terminated */
    size_t linecap;
    long lineno;
    int eof;
    int sniffed, gzip;
    unsigned char *in; /* gzip: compressed bytes not yet inflated */
    z_stream zs;
    int zdone;          /* the current gzip member ended */
    size_t max_line;    /* 0: no limit */
    size_t pending;     /* plain: bytes read while sniffing, already in buf */
};

int af_lines_open(af_lines **lp, const char *path, af_err *e) {
    *lp = NULL;
    int stdin_ = !path || strcmp(path, "-") == 0;
    const char *name = stdin_ ? "stdin" : path;
    int fd = stdin_ ? 0 : open(path, O_RDONLY);
    if (fd < 0) return af_errf(e, "%s: %s", name, strerror(errno));
    af_lines *l = af_calloc(1, sizeof *l);
    l->fd = fd;
    l->name = af_strdup(name);
    l->buf = af_malloc(CHUNK);
    l->in = af_malloc(CHUNK);
    l->linecap = 256;
    l->line = af_malloc(l->linecap);
    *lp = l;
    return 0;
}

/* read(2) that retries on EINTR: bytes read, 0 at end of input, -1 on error. */
static ssize_t read_some(int fd, void *p, size_t n) {
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r >= 0 || errno != EINTR) return r;
    }
}

static int read_error(af_lines *l, const char *msg, af_err *e) {
    return af_errf(e, "%s:%ld: read error: %s", l->name, l->lineno + 1, msg);
}

/* The first bytes: enough of them to tell gzip from text (a pipe may deliver one at a time). */
static int sniff(af_lines *l, af_err *e) {
    size_t n = 0;
    while (n < 2) {
        ssize_t r = read_some(l->fd, l->in + n, CHUNK - n);
        if (r < 0) return read_error(l, strerror(errno), e);
        if (r == 0) break;
        n += (size_t)r;
    }
    l->sniffed = 1;
    l->gzip = n >= 2 && l->in[0] == 0x1f && l->in[1] == 0x8b;
    if (l->gzip) {
        memset(&l->zs, 0, sizeof l->zs);
        /* 15 + 16: a gzip wrapper, not zlib's */
        if (inflateInit2(&l->zs, 15 + 16) != Z_OK) return read_error(l, "zlib init failed", e);
        l->zs.next_in = l->in;
        l->zs.avail_in = (uInt)n;
    } else {
        memcpy(l->buf, l->in, n);
        l->pending = n;
    }
    return 0;
}

/* Refills buf; returns bytes now in it, 0 at end of input, -1 on error. */
static int fill(af_lines *l, af_err *e) {
    if (!l->sniffed && sniff(l, e)) return -1;
    l->pos = 0;
    if (!l->gzip) {
        if (l->pending) {
            l->len = l->pending;
            l->pending = 0;
            return (int)l->len;
        }
        ssize_t r = read_some(l->fd, l->buf, CHUNK);
        if (r < 0) return read_error(l, strerror(errno), e);
        l->len = (size_t)r;
        return (int)r;
    }
    for (;;) {
        if (l->zs.avail_in == 0) {
            ssize_t r = read_some(l->fd, l->in, CHUNK);
            if (r < 0) return read_error(l, strerror(errno), e);
            if (r == 0) {
                l->len = 0;
                if (!l->zdone) return read_error(l, "unexpected end of file (truncated gzip)", e);
                return 0;
            }
            l->zs.next_in = l->in;
            l->zs.avail_in = (uInt)r;
        }
        if (l->zdone) { /* another member follows */
            if (inflateReset(&l->zs) != Z_OK) return read_error(l, "zlib reset failed", e);
            l->zdone = 0;
        }
        l->zs.next_out = (Bytef *)l->buf;
        l->zs.avail_out = CHUNK;
        int rc = inflate(&l->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) l->zdone = 1;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return read_error(l, l->zs.msg ? l->zs.msg : "invalid gzip data", e);
        l->len = CHUNK - l->zs.avail_out;
        if (l->len) return (int)l->len;
    }
}

static int append(af_lines *l, size_t *n, const char *p, size_t k, af_err *e) {
    if (l->max_line && *n + k > l->max_line)
        return af_errf(e,
                       "%s:%ld: the line is longer than %zu MiB, the most af reads in one line "
                       "(a tokenized example of 512 tokens takes a few KiB)",
                       l->name, l->lineno + 1, l->max_line >> 20);
    if (*n + k + 1 > l->linecap) {
        while (*n + k + 1 > l->linecap) l->linecap *= 2;
        l->line = af_realloc(l->line, l->linecap);
    }
    memcpy(l->line + *n, p, k);
    *n += k;
    return 0;
}

void af_lines_max(af_lines *l, size_t bytes) {
    l->max_line = bytes;
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
            if (append(l, &n, p, (size_t)(nl - p), e)) return -2;
            l->pos += (size_t)(nl - p) + 1;
            break;
        }
        if (append(l, &n, p, avail, e)) return -2;
        l->pos = l->len;
        partial = 1;
    }
    if (n > 0 && l->line[n - 1] == '\r') n--;
    l->line[n] = 0;
    l->lineno++;
    *line = l->line;
    return (long)n;
}

int af_lines_would_block(const af_lines *l) {
    if (l->eof || l->pending || (l->gzip && l->zs.avail_in > 0)) return 0;
    if (l->pos < l->len && memchr(l->buf + l->pos, '\n', l->len - l->pos)) return 0;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    return r == 0; /* an error is left for the read to report */
}

long af_lines_lineno(const af_lines *l) {
    return l->lineno;
}

const char *af_lines_name(const af_lines *l) {
    return l->name;
}

void af_lines_close(af_lines *l) {
    if (!l) return;
    if (l->gzip) inflateEnd(&l->zs);
    if (l->fd > 0) close(l->fd);
    free(l->name);
    free(l->in);
    free(l->buf);
    free(l->line);
    free(l);
}
