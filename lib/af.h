/* af.h: what every part of libaf shares: errors, the arena, the RNG, atomic file writes.
 *
 * Conventions (lib/README.md, "Conventions"):
 *  - library functions return 0 on success and -1 on failure, with the message in an af_err;
 *    they never print and never exit;
 *  - matrices are row-major float32; activations are [tokens, features] with tokens = batch*seq;
 *    nn.Linear weights are [out, in] as PyTorch stores them;
 *  - backward functions accumulate (+=) into every gradient they produce (see ops.h). */
#ifndef AF_H
#define AF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define AF_VERSION "0.1.0"

/* ---- errors ---------------------------------------------------------------------------- */
typedef struct {
    char msg[1024];
} af_err;

/* Sets e->msg (printf-style) and returns -1, so `return af_errf(e, ...)` reads naturally. */
int af_errf(af_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an existing message (e.g. a file name). Returns -1. */
int af_err_prefix(af_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- memory ---------------------------------------------------------------------------- */
/* malloc/calloc/realloc that abort with a message on failure: out of memory is not a condition
 * af can report usefully through af_err, and checking every small allocation hides the logic. */
void *af_malloc(size_t n);
void *af_calloc(size_t n, size_t size);
void *af_realloc(void *p, size_t n);
char *af_strdup(const char *s);

/* An arena: one allocation, carved into 64-byte aligned pieces; freed all at once.
 * af_arena_reset keeps the memory for reuse (the hot path carves, never mallocs). */
typedef struct {
    char *base;
    size_t size, used, peak;
} af_arena;

void af_arena_init(af_arena *a, size_t bytes);
void af_arena_free(af_arena *a);
void af_arena_reset(af_arena *a);
void *af_arena_alloc(af_arena *a, size_t bytes);   /* aborts if the arena is too small */
float *af_arena_floats(af_arena *a, size_t n);     /* zero-filled */

/* ---- random numbers --------------------------------------------------------------------- */
/* xoshiro256**: fast, seedable, identical on every platform. */
typedef struct {
    uint64_t s[4];
} af_rng;

void af_rng_seed(af_rng *r, uint64_t seed);
uint64_t af_rng_u64(af_rng *r);
float af_rng_uniform(af_rng *r);                  /* [0, 1) */
float af_rng_normal(af_rng *r);                   /* N(0, 1), Box-Muller */
uint32_t af_rng_below(af_rng *r, uint32_t n);     /* uniform in [0, n) */

/* ---- files ------------------------------------------------------------------------------ */
/* Writes a file atomically: `write` fills a temp file beside `path` (path.tmp.XXXXXX); it is
 * flushed, fsynced and renamed over `path` only if `write` returns 0, and the directory is then
 * fsynced so the rename survives a power cut. A crash or a signal at any point leaves either the
 * old file or the new one, never a mix; a signal that ends the program during the write
 * (signals.h) removes the temp file too (af_tmp_push). */
typedef int (*af_write_fn)(FILE *f, void *ctx, af_err *e);
int af_write_atomic(const char *path, af_write_fn write, void *ctx, af_err *e);

/* fsyncs the directory that holds path (its parent), so a rename or a new entry there is
 * durable. */
int af_fsync_parent(const char *path, af_err *e);

/* Temporary paths an immediate exit on a signal must remove: af_tmp_push registers one (a file,
 * or an empty-by-then directory: cleanup runs in reverse order) and returns a mark;
 * af_tmp_release(mark) forgets it and everything pushed after it. af_tmp_cleanup removes every
 * registered path and is async-signal-safe (unlink and rmdir only), for signal handlers. Paths
 * longer than AF_TMP_PATH_MAX are not registered. */
#define AF_TMP_PATH_MAX 4096
int af_tmp_push(const char *path);
void af_tmp_release(int mark);
void af_tmp_cleanup(void);

/* Opens a regular file for reading; anything else (a FIFO, a device, a directory) is refused
 * without blocking. Returns the descriptor, or -1 with a message naming the path. */
int af_open_regular(const char *path, af_err *e);
/* Reads a whole regular file into memory (NUL-terminated). */
int af_read_file(const char *path, char **data, size_t *len, af_err *e);

/* sha256 of a byte range, as 64 lowercase hex digits + NUL. */
void af_sha256_hex(const void *data, size_t len, char out[65]);
int af_sha256_file(const char *path, char out[65], af_err *e);

/* ---- misc ------------------------------------------------------------------------------- */
double af_now(void);               /* monotonic seconds */
int af_ncores(void);

/* ---- threads ---------------------------------------------------------------------------- */
/* One pool of n threads (the caller and n - 1 workers) does all of af's parallel work; OpenBLAS
 * is set to 1 thread, so its own threads never compete with the pool for the cores (the matrix
 * products split their output between the pool's threads instead: gemm in ops.h). n <= 0: all
 * cores. Until it is called everything runs on the calling thread. */
void af_set_threads(int n);
int af_threads(void);
/* Runs fn(ctx, lo, hi) over [0, n) cut into contiguous ranges (about 4 per thread, taken by
 * whichever thread is free) and returns when all are done. Called from inside fn (or from a
 * worker) it runs fn(ctx, 0, n) on the calling thread. Work that depends only on the index (a
 * seed per index, a block of rows) gives the same result whichever thread runs it. Call it from
 * one thread at a time. */
typedef void (*af_task_fn)(void *ctx, int lo, int hi);
void af_parallel(int n, af_task_fn fn, void *ctx);

#endif
