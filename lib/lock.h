/* lock.h: one writer per output. Two trainings given the same -o would both run for hours, both
 * report success, and the last rename would win; the second one is refused at the start instead.
 *
 * The lock is flock(2) on PATH.lock, created beside the output. It is held for the life of the
 * run (the kernel drops it if the process dies, so a crash never leaves a stale lock) and the
 * file is removed by lock_release. A lock file some other process removed between our open and
 * our flock is retried, so two writers never hold locks on two different files of one name. */
#ifndef AF_LOCK_H
#define AF_LOCK_H

#include "af.h"

typedef struct {
    int fd;     /* -1: not held */
    char *path; /* PATH.lock */
} lock_file;

/* Takes the lock of path (PATH.lock), without waiting: when another process holds it, fails with
 * a message naming the output and that process (its pid, written in the lock file). */
int lock_acquire(lock_file *l, const char *path, af_err *e);
/* Removes the lock file and drops the lock; harmless on a lock never taken. */
void lock_release(lock_file *l);

#endif
