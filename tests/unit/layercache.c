/* layercache.c: examples in and out, in memory and in the file; the file never visible in its
 * directory; a directory that cannot hold it, named; a full disk, named at the write. */
#include "layercache.h"
#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N = 5, H = 3 };
static const int len[N] = {4, 1, 7, 2, 5};

/* Example i's rows: values that say which example and row they are. */
static void rows(float *x, int i) {
    for (int t = 0; t < len[i]; t++)
        for (int j = 0; j < H; j++) x[t * H + j] = (float)(100 * i + 10 * t + j) + 0.25f;
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* Puts the even examples, then every one; reads all back; says whether all matched. */
static int round_trip(layercache *c, const char *what) {
    float x[7 * H], y[7 * H];
    int good = 1;
    for (int i = 0; i < N; i += 2) rows(x, i), good &= layercache_put(c, i, x) == 0;
    ok(layercache_has(c, 2) && !layercache_has(c, 1) && !layercache_has(c, N) &&
           !layercache_has(c, -1),
       "%s: has what was put, only that", what);
    ok(layercache_get(c, 1, y) == -1 && !c->failed, "%s: an example not in is not read", what);
    for (int i = 1; i < N; i += 2) rows(x, i), good &= layercache_put(c, i, x) == 0;
    for (int i = N - 1; i >= 0; i--) {
        memset(y, 0, sizeof y);
        rows(x, i);
        good &= layercache_get(c, i, y) == 0 && !memcmp(x, y, len[i] * H * sizeof(float));
    }
    return ok(good, "%s: every example back as put (read in another order)", what);
}

int main(void) {
    uint64_t bytes = layercache_bytes(N, len, H);
    ok(bytes == 19 * H * sizeof(float), "bytes: the rows of every example, %llu",
       (unsigned long long)bytes);
    af_err e;
    layercache c;
    ok(layercache_open(&c, N, len, H, bytes, NULL, &e) == 0 && c.where == LAYERCACHE_MEMORY,
       "a budget of exactly its bytes: in memory");
    round_trip(&c, "memory");
    layercache_close(&c);

    char dir[] = "/tmp/af-layercache-test.XXXXXX";
    if (!ok(mkdtemp(dir) != NULL, "a scratch directory")) return done_testing();
    ok(layercache_open(&c, N, len, H, bytes - 1, dir, &e) == 0 && c.where == LAYERCACHE_FILE,
       "one byte less: in a file");
    ok(entries(dir) == 0, "the file is not in the directory, open or not");
    round_trip(&c, "file");
    layercache_close(&c);
    ok(entries(dir) == 0, "nothing left after closing");

    /* a file that cannot grow: writing fails, and says where (RLIMIT_FSIZE would signal, so
     * a descriptor opened read-only stands in for a full disk) */
    ok(layercache_open(&c, N, len, H, 0, dir, &e) == 0, "another file cache");
    float x[7 * H];
    rows(x, 0);
    close(c.fd);
    c.fd = open("/dev/null", O_RDONLY);
    ok(layercache_put(&c, 0, x) == -1 && c.failed && strstr(c.err.msg, "af-layer-cache.") &&
           strstr(c.err.msg, "example 1"),
       "a failed write names the file and the example: %s", c.err.msg);
    ok(!layercache_has(&c, 0), "and the example is not in");
    layercache_close(&c);

    char missing[64];
    snprintf(missing, sizeof missing, "%s/no/such", dir);
    ok(layercache_open(&c, N, len, H, 0, missing, &e) == -1 && strstr(e.msg, missing),
       "a directory that is not there: %s", e.msg);
    rmdir(dir);
    return done_testing();
}
