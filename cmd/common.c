/* common.c: shared front-end helpers; see common.h. */
#include "common.h"
#include "dist.h"

#include "blasnote.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *af_prog = "af";

static void vmsg(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", af_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    dist_abort(EXIT_RUNTIME); /* under mpirun: every rank, not a hang in the next collective */
}

void die_err(const af_err *e) {
    fprintf(stderr, "%s: %s\n", af_prog, e->msg);
    dist_abort(EXIT_RUNTIME); /* under mpirun: every rank, not a hang in the next collective */
}

void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", af_prog);
    dist_abort(EXIT_USAGE);
}

void usage_try(void) {
    fprintf(stderr, "Try '%s --help' for more information.\n", af_prog);
    dist_abort(EXIT_USAGE);
}

void warnx(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

void note_blas(int quiet) {
    char buf[320];
    const char *note = quiet ? NULL : blas_note(buf, sizeof buf);
    if (note) warnx("%s", note);
}

void pathguard_done(pathguard *g) {
    af_err e;
    int bad = pathguard_check(g, &e);
    pathguard_free(g);
    if (bad) usage_error("%s", e.msg);
}

long opt_long(const char *opt, const char *val, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max)
        usage_error("%s: '%s' is not an integer in [%ld, %ld]", opt, val, min, max);
    return v;
}

double opt_double(const char *opt, const char *val, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v) || v < min || v > max)
        usage_error("%s: '%s' is not a number in [%g, %g]", opt, val, min, max);
    return v;
}

int finish(int status) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: write error on standard output: %s\n", af_prog, strerror(errno));
        return EXIT_RUNTIME;
    }
    return status;
}
