/* signals.h: Ctrl-C and SIGTERM during training (af-train-adapter(1), af-files(5)).
 *
 * The first SIGINT or SIGTERM only sets a flag; the training loop polls signals_pending() between
 * steps, writes a resumable checkpoint atomically and exits with signals_exit_status(). A second
 * signal means "now": the handler calls _exit(128 + signo) (130 for SIGINT, 143 for SIGTERM) at
 * once. Atomic writes make that safe: the output is the old file or the new one, and the handler
 * removes the temp files of a write in flight (af_tmp_cleanup) before it exits.
 *
 * The handler touches only a volatile sig_atomic_t and af.c's table of temp paths, and calls
 * only unlink, rmdir and _exit, all async-signal-safe. */
#ifndef AF_SIGNALS_H
#define AF_SIGNALS_H

#include "af.h"

/* Installs the handlers for SIGINT and SIGTERM (SA_RESTART, so reads and writes in flight are not
 * cut short by EINTR) and clears any pending request. A signal that was ignored at the first call
 * (nohup, background jobs of scripts) is left ignored. */
int signals_install(af_err *e);
/* Puts back the handlers that were there before signals_install. */
void signals_restore(void);
/* The signal number that asked the program to stop (SIGINT or SIGTERM), or 0. */
int signals_pending(void);
/* 128 + the pending signal (130, 143), or 0 when none is pending: the exit status to use after
 * the checkpoint is written. */
int signals_exit_status(void);

#endif
