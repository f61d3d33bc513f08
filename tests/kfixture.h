/* kfixture.h: reading a PyTorch fixture of tests/fixtures/kernels/ (scripts/gen-kernel-fixtures.py,
 * gen-hier-fixtures.py) and comparing against it, for the parity tests of the kernels: one file
 * open at a time (F), its metadata, its tensors, outputs within OUT_TOL absolute and gradients
 * within GRAD_TOL relative (L2 over the tensor, against a floor of GRAD_FLOOR for a gradient
 * that is zero in exact arithmetic). A missing key or tensor counts in `missing` and reads as 0. */
#ifndef KFIXTURE_H
#define KFIXTURE_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "tap.h"

#define OUT_TOL 1e-4
#define GRAD_TOL 1e-3
#define GRAD_FLOOR 1e-2

static st_file F;
static const char *fname;
static int missing;

static inline const char *top(void) {
    const char *t = getenv("AF_TOP");
    return t && *t ? t : ".";
}

static inline int open_fixture(const char *name) {
    char path[1024];
    af_err e;
    snprintf(path, sizeof path, "%s/tests/fixtures/kernels/%s.safetensors", top(), name);
    fname = name;
    int rc = st_open(&F, path, &e);
    if (rc) diag("%s", e.msg);
    return ok(rc == 0, "%s: fixture opens", name);
}

static inline const char *meta(const char *key) {
    const char *v = st_meta_get(&F, key);
    if (!v) {
        diag("%s: metadata %s missing", fname, key);
        missing++;
        return "0";
    }
    return v;
}

static inline int meta_int(const char *key) {
    return atoi(meta(key));
}

static inline float meta_float(const char *key) {
    return (float)atof(meta(key));
}

/* Copies tensor `name` (n floats expected) into dst; counts a failure if absent or misshapen. */
static inline void load(float *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void load(float *dst, size_t n, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t = st_find(&F, name);
    af_err e;
    if (!t || (size_t)t->numel != n || st_to_f32(t, dst, (int64_t)n, &e)) {
        diag("%s: tensor %s: %zu floats expected, %s", fname, name, n,
             t ? "other size or dtype found" : "not found");
        missing++;
        memset(dst, 0, n * sizeof(float));
    }
}

static inline float *fetch(size_t n, const char *name) {
    float *p = malloc(n * sizeof(float));
    load(p, n, "%s", name);
    return p;
}

static inline void cmp_out(const char *what, const float *c, size_t n) {
    float *ref = fetch(n, what);
    double d = tap_maxdiff(c, ref, n);
    ok(d <= OUT_TOL, "%s: %s (max abs diff %.2e)", fname, what, d);
    free(ref);
}

static inline void cmp_grad(const float *c, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void cmp_grad(const float *c, size_t n, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    float *ref = fetch(n, name);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    double rel = sqrt(num) / fmax(sqrt(den), GRAD_FLOOR);
    ok(rel <= GRAD_TOL, "%s: %s (rel err %.2e)", fname, name, rel);
    free(ref);
}

#endif
