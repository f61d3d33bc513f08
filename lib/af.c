/* af.c: errors, allocation, arena, RNG, atomic writes, timing. */
#include "af.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int af_errf(af_err *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int af_err_prefix(af_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t np = strlen(pre), room = sizeof e->msg - 1;
    if (np > room - 2) np = room - 2;
    memcpy(e->msg, pre, np);
    memcpy(e->msg + np, ": ", 2);
    size_t no = strnlen(old, sizeof old - 1);
    if (no > room - np - 2) no = room - np - 2;
    memcpy(e->msg + np + 2, old, no);
    e->msg[np + 2 + no] = 0;
    return -1;
}

static void oom(size_t n) {
    fprintf(stderr, "af: out of memory (%zu bytes)\n", n);
    abort();
}

void *af_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *af_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *af_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *af_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(af_malloc(n), s, n);
}

/* ---- arena ---- */
void af_arena_init(af_arena *a, size_t bytes) {
    a->size = (bytes + 63) & ~(size_t)63;
    a->used = a->peak = 0;
    a->base = NULL;
    if (a->size && posix_memalign((void **)&a->base, 64, a->size)) oom(a->size);
}

void af_arena_free(af_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

void af_arena_reset(af_arena *a) {
    a->used = 0;
}

void *af_arena_alloc(af_arena *a, size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n > a->size - a->used) {
        fprintf(stderr, "af: arena exhausted (%zu of %zu bytes used, %zu more asked)\n", a->used,
                a->size, n);
        abort();
    }
    void *p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *af_arena_floats(af_arena *a, size_t n) {
    float *p = af_arena_alloc(a, n * sizeof(float));
    memset(p, 0, n * sizeof(float));
    return p;
}

/* ---- rng: xoshiro256** seeded through splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void af_rng_seed(af_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t af_rng_u64(af_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float af_rng_uniform(af_rng *r) {
    return (float)(af_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float af_rng_normal(af_rng *r) {
    double u1 = ((af_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0,1] */
    double u2 = (af_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t af_rng_below(af_rng *r, uint32_t n) {
    return (uint32_t)(((af_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- files ---- */
/* A fixed table, no malloc: the signal handler reads it while the program may be anywhere. A
 * slot is filled before tmp_depth counts it, so the handler never sees a half-written path. */
#define AF_TMP_SLOTS 16
static char tmp_paths[AF_TMP_SLOTS][AF_TMP_PATH_MAX];
static volatile sig_atomic_t tmp_depth;

int af_tmp_push(const char *path) {
    int mark = tmp_depth;
    size_t n = strlen(path);
    if (mark < AF_TMP_SLOTS && n < AF_TMP_PATH_MAX) {
        memcpy(tmp_paths[mark], path, n + 1);
        tmp_depth = mark + 1;
    }
    return mark;
}

void af_tmp_release(int mark) {
    if (mark >= 0 && mark < tmp_depth) tmp_depth = mark;
}

void af_tmp_cleanup(void) {
    for (int i = tmp_depth - 1; i >= 0; i--)
        if (unlink(tmp_paths[i]) != 0) rmdir(tmp_paths[i]);
    tmp_depth = 0;
}

int af_fsync_parent(const char *path, af_err *e) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "dir/" names dir, whose parent is wanted */
    while (n > 0 && path[n - 1] != '/') n--;
    char *dir = af_malloc(n + 2);
    if (n == 0)
        strcpy(dir, ".");
    else
        memcpy(dir, path, n), dir[n] = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    if (fd < 0)
        rc = af_errf(e, "%s: cannot open the directory to sync it: %s", dir, strerror(errno));
    /* some file systems cannot fsync a directory (EINVAL): nothing more can be done there */
    else if (fsync(fd) != 0 && errno != EINVAL)
        rc = af_errf(e, "%s: fsync of the directory failed: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int af_write_atomic(const char *path, af_write_fn fill, void *ctx, af_err *e) {
    size_t n = strlen(path);
    char *tmp = af_malloc(n + 16);
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        af_errf(e, "%s: cannot create temporary file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int mark = af_tmp_push(tmp);
    /* mkstemp makes 0600; a result file should have the usual permissions. */
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        af_tmp_release(mark);
        free(tmp);
        return af_errf(e, "%s: %s", path, strerror(errno));
    }
    int rc = fill(f, ctx, e);
    if (rc == 0 && (fflush(f) != 0 || ferror(f)))
        rc = af_errf(e, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && fsync(fileno(f)) != 0)
        rc = af_errf(e, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0) rc = af_errf(e, "%s: close failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = af_errf(e, "%s: cannot rename temporary file into place: %s", path, strerror(errno));
    if (rc != 0) unlink(tmp);
    af_tmp_release(mark);
    if (rc == 0) rc = af_fsync_parent(path, e);
    free(tmp);
    return rc;
}

int af_open_regular(const char *path, af_err *e) {
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever, before fstat
     * could tell it is no file */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return af_errf(e, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int err = errno;
        close(fd);
        return S_ISDIR(sb.st_mode) ? af_errf(e, "%s: a directory, not a file", path)
                                   : af_errf(e, "%s: not a regular file%s%s", path, err ? ": " : "",
                                             err ? strerror(err) : "");
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

int af_read_file(const char *path, char **data, size_t *len, af_err *e) {
    int fd = af_open_regular(path, e);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return af_errf(e, "%s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = af_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = af_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return af_errf(e, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return 0;
}

/* ---- misc ---- */
double af_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int af_ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- threads ------------------------------------------------------------------------------- */

/* A job is published in one 64-bit word, `next`: its number in the high half, the first index
 * not yet taken in the low half. Threads take chunks of `grain` indices with a compare-and-swap
 * that fails once the word carries another job's number, so a worker that wakes late can neither
 * take nor run anything of a job that is over, and the caller never waits for a worker to wake:
 * it takes whatever chunks are left itself and waits only for chunks being run. A job's
 * parameters sit in jobs[number & 1], rewritten only two jobs later (after this one is done).
 * Workers spin on `next` for a while (a training step starts parallel regions microseconds
 * apart), then sleep on the condition variable; the caller wakes sleepers only when there are. */
#define POOL_MAX 64
#define POOL_SPIN (1 << 11)

typedef struct {
    af_task_fn fn;
    void *ctx;
    int total, grain;
    atomic_int done; /* indices finished */
} pool_job;

static struct {
    int n;                   /* threads in use, the caller included */
    int started;             /* workers created so far */
    pthread_t tid[POOL_MAX];
    unsigned born[POOL_MAX]; /* the job number when worker k was created: it runs later ones */
    unsigned number;         /* the caller's job counter */
    _Atomic uint64_t next;   /* number << 32 | first index not taken */
    pool_job jobs[2];
    atomic_int sleepers;     /* workers blocked on cv */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pool = {.n = 1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static _Thread_local int in_task;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static unsigned job_number(uint64_t v) {
    return (unsigned)(v >> 32);
}

/* Takes and runs chunks of job g while it is the current job and has chunks left. */
static void run_chunks(unsigned g) {
    pool_job *J = &pool.jobs[g & 1];
    for (;;) {
        uint64_t v = atomic_load(&pool.next);
        if (job_number(v) != g) return;
        /* g's grain and total as long as the swap below succeeds, so both are read before it:
         * a swap that takes an index past the end does not hold g open, so by the time a
         * thread preempted right after it read the total, g and g + 1 may be over and g + 2's
         * parameters in this slot, and that thread would run a chunk of g + 2 that another
         * thread also takes (and count it done twice, so g + 2's caller could return while
         * the chunk still runs). fn and ctx are read after the swap only for an index below
         * the total: g cannot end before that chunk is counted done. */
        int grain = J->grain, total = J->total;
        if (!atomic_compare_exchange_weak(&pool.next, &v, v + (uint64_t)grain)) continue;
        int lo = (int)(uint32_t)v;
        if (lo >= total) return;
        int hi = lo + grain < total ? lo + grain : total;
        J->fn(J->ctx, lo, hi);
        atomic_fetch_add(&J->done, hi - lo);
    }
}

static void *pool_worker(void *arg) {
    int k = (int)(intptr_t)arg;
    /* not the number it finds on starting: a job may have been published before it ran */
    unsigned seen = pool.born[k];
    in_task = 1;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = job_number(atomic_load(&pool.next))) == seen) {
            if (++spins < POOL_SPIN) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((g = job_number(atomic_load(&pool.next))) == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.mu);
            break;
        }
        seen = g;
        if (k < pool.n) run_chunks(g); /* else the pool shrank: this worker sits out */
    }
    return NULL;
}

void af_set_threads(int n) {
    if (n <= 0) n = af_ncores();
    if (n > POOL_MAX) n = POOL_MAX;
    openblas_set_num_threads(1);
    while (pool.started < n - 1) {
        int k = pool.started + 1;
        pool.born[k] = pool.number;
        if (pthread_create(&pool.tid[k], NULL, pool_worker, (void *)(intptr_t)k) != 0) {
            n = k; /* no more threads: use what there is */
            break;
        }
        pthread_detach(pool.tid[k]);
        pool.started++;
    }
    pool.n = n;
}

int af_threads(void) {
    return pool.n;
}

void af_parallel(int n, af_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (pool.n == 1 || in_task || n == 1) {
        fn(ctx, 0, n);
        return;
    }
    int T = pool.n;
    unsigned g = ++pool.number;
    pool_job *J = &pool.jobs[g & 1];
    J->fn = fn, J->ctx = ctx, J->total = n;
    J->grain = (n + 4 * T - 1) / (4 * T);
    atomic_store(&J->done, 0);
    atomic_store(&pool.next, (uint64_t)g << 32);
    if (atomic_load(&pool.sleepers)) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    in_task = 1;
    run_chunks(g);
    in_task = 0;
    /* every chunk is taken: wait for those a worker is still running */
    for (int spins = 0; atomic_load(&J->done) < n;)
        if (++spins < POOL_SPIN) cpu_relax();
        else sched_yield(); /* the worker was preempted mid-chunk: let it run */
}
