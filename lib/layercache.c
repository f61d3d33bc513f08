/* layercache.c: the frozen lower layers' output per example; see layercache.h. */
#include "layercache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t layercache_bytes(int n, const int *len, int H) {
    uint64_t rows = 0;
    for (int i = 0; i < n; i++) rows += (uint64_t)len[i];
    return rows * (uint64_t)H * sizeof(float);
}

int layercache_open(layercache *c, int n, const int *len, int H, uint64_t budget, const char *dir,
                    af_err *e) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->n = n, c->H = H;
    c->off = af_malloc(((size_t)n + 1) * sizeof *c->off);
    c->off[0] = 0;
    for (int i = 0; i < n; i++) c->off[i + 1] = c->off[i] + (uint64_t)len[i] * H;
    c->has = af_calloc(n ? n : 1, 1);
    uint64_t bytes = c->off[n] * sizeof(float);
    if (bytes <= budget) {
        c->where = LAYERCACHE_MEMORY;
        c->mem = af_malloc(bytes ? bytes : 1);
        return 0;
    }
    c->where = LAYERCACHE_FILE;
    if (!dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t k = strlen(dir) + 32;
    c->path = af_malloc(k);
    snprintf(c->path, k, "%s/af-layer-cache.XXXXXX", dir);
    c->fd = mkstemp(c->path);
    /* unlinked at once: only this descriptor holds the file, so it goes with the process */
    if (c->fd < 0 || unlink(c->path)) {
        af_errf(e, "%s: cannot create the layer cache (%.0f MiB): %s", c->path,
                (double)bytes / (1 << 20), strerror(errno));
        layercache_close(c);
        return -1;
    }
    return 0;
}

int layercache_has(const layercache *c, int i) {
    return i >= 0 && i < c->n && c->has[i];
}

/* Moves the bytes of example i between memory and the file at its offset; write: into the file. */
static int file_io(layercache *c, int i, float *buf, int write) {
    size_t want = (size_t)(c->off[i + 1] - c->off[i]) * sizeof(float), done = 0;
    off_t at = (off_t)(c->off[i] * sizeof(float));
    while (done < want) {
        ssize_t r = write ? pwrite(c->fd, (char *)buf + done, want - done, at + (off_t)done)
                          : pread(c->fd, (char *)buf + done, want - done, at + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            c->failed = 1;
            return af_errf(&c->err, "%s (the layer cache, unlinked): %s example %d: %s", c->path,
                           write ? "writing" : "reading", i + 1,
                           r < 0 ? strerror(errno) : "the file ends early");
        }
        done += (size_t)r;
    }
    return 0;
}

int layercache_put(layercache *c, int i, const float *x) {
    if (i < 0 || i >= c->n) return -1;
    size_t n = (size_t)(c->off[i + 1] - c->off[i]);
    if (c->where == LAYERCACHE_MEMORY)
        memcpy(c->mem + c->off[i], x, n * sizeof(float));
    else if (file_io(c, i, (float *)x, 1))
        return -1;
    c->has[i] = 1;
    return 0;
}

int layercache_get(layercache *c, int i, float *x) {
    if (!layercache_has(c, i)) return -1;
    size_t n = (size_t)(c->off[i + 1] - c->off[i]);
    if (c->where == LAYERCACHE_FILE) return file_io(c, i, x, 0);
    memcpy(x, c->mem + c->off[i], n * sizeof(float));
    return 0;
}

void layercache_close(layercache *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->off), free(c->has), free(c->mem), free(c->path);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}
