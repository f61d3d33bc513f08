/* outlock.h: the training programs' hold on their output (lock.h) for the whole run. */
#ifndef AF_CMD_OUTLOCK_H
#define AF_CMD_OUTLOCK_H

/* Locks path (PATH.lock) until the program exits, however it exits: exit() and die() release it
 * through atexit, a second Ctrl-C through af_tmp_cleanup, a crash through the kernel (the lock
 * file may then stay, unlocked, and the next run takes it). Exits 1 when another process holds
 * it. At most 4 paths. */
void outlock_hold(const char *path);

#endif
