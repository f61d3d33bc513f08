/* signals.c: first signal asks, second signal exits (see signals.h). */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending;
static struct sigaction old_int, old_term;
static int installed;

static void on_signal(int signo) {
    if (pending) {
        /* "now": but not leaving a half-written checkpoint's temp file behind */
        af_tmp_cleanup();
        _exit(128 + signo);
    }
    pending = signo;
}

int signals_install(af_err *e) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* Block the other signal while one is handled, so pending is never set twice at once. */
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    pending = 0;
    if (!installed &&
        (sigaction(SIGINT, NULL, &old_int) != 0 || sigaction(SIGTERM, NULL, &old_term) != 0))
        return af_errf(e, "cannot read signal handlers: %s", strerror(errno));
    /* A signal ignored when we started (nohup, `cmd &` in a script) stays ignored, as the shell
     * meant it to. */
    if ((old_int.sa_handler != SIG_IGN && sigaction(SIGINT, &sa, NULL) != 0) ||
        (old_term.sa_handler != SIG_IGN && sigaction(SIGTERM, &sa, NULL) != 0))
        return af_errf(e, "cannot install signal handlers: %s", strerror(errno));
    installed = 1;
    return 0;
}

void signals_restore(void) {
    if (!installed) return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = 0;
}

int signals_pending(void) {
    return pending;
}

int signals_exit_status(void) {
    return pending ? 128 + pending : 0;
}
