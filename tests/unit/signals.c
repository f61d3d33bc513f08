/* signals.c: first signal sets the flag, second exits 128+signo; ignored signals stay ignored.
 * Each case runs in a child process so a failure cannot take the test runner with it. */
#include "signals.h"
#include "tap.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child with default dispositions (the runner may have been started with SIGINT
 * ignored, which signals_install respects); returns its wait status. */
static int in_child(int (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        _exit(fn());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static int once_then_twice(int sig) {
    af_err e;
    if (signals_install(&e)) return 2;
    if (signals_pending() != 0 || signals_exit_status() != 0) return 3;
    raise(sig);
    if (signals_pending() != sig || signals_exit_status() != 128 + sig) return 4;
    raise(sig); /* the second one must not return */
    return 5;
}
static int sigint_twice(void) {
    return once_then_twice(SIGINT);
}
static int sigterm_twice(void) {
    return once_then_twice(SIGTERM);
}

static int mixed(void) {
    af_err e;
    if (signals_install(&e)) return 2;
    raise(SIGTERM);
    if (signals_pending() != SIGTERM) return 3;
    raise(SIGINT);
    return 4;
}

/* A loop as training runs it, interrupted from outside. */
static int polling_loop(void) {
    af_err e;
    if (signals_install(&e)) return 2;
    kill(getppid(), SIGUSR1); /* ready */
    for (int i = 0; i < 5000; i++) {
        if (signals_pending()) return signals_pending() == SIGTERM ? 42 : 6;
        usleep(1000);
    }
    return 7;
}

static int ignored_stays_ignored(void) {
    af_err e;
    signal(SIGINT, SIG_IGN);
    if (signals_install(&e)) return 2;
    raise(SIGINT);
    raise(SIGINT);
    return signals_pending() == 0 ? 42 : 3;
}

static int restore(void) {
    af_err e;
    if (signals_install(&e)) return 2;
    signals_restore();
    raise(SIGTERM); /* default action again: killed by the signal */
    return 3;
}

static volatile sig_atomic_t ready;
static void on_usr1(int s) {
    (void)s;
    ready = 1;
}

int main(void) {
    int st = in_child(sigint_twice);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 130,
       "SIGINT: first sets the flag, second exits 130 "
       "(status %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    st = in_child(sigterm_twice);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 143, "SIGTERM twice exits 143 (status %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    st = in_child(mixed);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 130,
       "SIGTERM then SIGINT exits at once, 130 (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    signal(SIGUSR1, on_usr1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        _exit(polling_loop());
    }
    while (!ready) usleep(1000);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 42, "a polling loop sees a SIGTERM sent from outside");

    st = in_child(ignored_stays_ignored);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 42, "SIGINT ignored at start stays ignored");
    st = in_child(restore);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "signals_restore puts the default back");
    ok(signals_pending() == 0, "the parent was never touched");
    return done_testing();
}
