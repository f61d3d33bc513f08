/* common.h: what every af program's front end shares (sbase/libarchive style): the program
 * name, error printing in the `prog: file:line: message` form, and exit codes. */
#ifndef AF_CMD_COMMON_H
#define AF_CMD_COMMON_H

#include "af.h"
#include "pathguard.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

extern const char *af_prog;

/* Prints "prog: message" on stderr and exits 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints "prog: <e->msg>" and exits 1. */
void die_err(const af_err *e) __attribute__((noreturn));
/* Prints "prog: message" and "Try 'prog --help'." on stderr, exits 2. */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* After getopt_long has named a bad option on stderr: "Try 'prog --help'.", exit 2. */
void usage_try(void) __attribute__((noreturn));
/* Prints "prog: message" on stderr (a warning; no exit). */
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Says on stderr, once, when OPENBLAS_CORETYPE holds OpenBLAS below what the CPU can do
 * (blasnote.h); quiet: nothing. */
void note_blas(int quiet);
/* Exits 2 when an output of g is an input or another output (pathguard_check); frees g. */
void pathguard_done(pathguard *g);
/* Option value parsers: exit 2 naming the option when the value is not valid. */
long opt_long(const char *opt, const char *val, long min, long max);
double opt_double(const char *opt, const char *val, double min, double max);
/* Ends a program: checks that stdout was written without error (sbase), returns the status. */
int finish(int status);

#endif
