/* lock.c: flock on PATH.lock, one writer per output (lock.h). */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int lock_acquire(lock_file *l, const char *path, af_err *e) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* af-pretrain's "-o dir/" locks dir.lock */
    l->fd = -1;
    l->path = af_malloc(n + 6);
    snprintf(l->path, n + 6, "%.*s.lock", (int)n, path);
    int said = 0;
    for (int tries = 0; tries < 100 && !said; tries++) {
        int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            said = af_errf(e, "%s: cannot create the lock file: %s", l->path, strerror(errno));
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            char pid[32] = "";
            ssize_t got = pread(fd, pid, sizeof pid - 1, 0);
            pid[got > 0 ? got : 0] = 0;
            pid[strcspn(pid, "\n")] = 0;
            close(fd);
            if (err == EWOULDBLOCK)
                said = af_errf(e,
                               "%.*s: another af program is writing it (process %s holds %s); wait "
                               "for it to finish, or choose another -o",
                               (int)n, path, *pid ? pid : "?", l->path);
            else
                said = af_errf(e, "%s: cannot lock: %s", l->path, strerror(err));
            break;
        }
        /* the holder before us may have removed the file after we opened it: our lock would
         * then be on a file no one else can find */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            char pid[32];
            int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, k, 0) != k) {
                /* the pid is only for the message; the lock holds without it */
            }
            l->fd = fd;
            return 0;
        }
        close(fd);
    }
    if (!said) af_errf(e, "%s: cannot take the lock", l->path);
    free(l->path);
    l->path = NULL;
    return -1;
}

void lock_release(lock_file *l) {
    if (l->fd >= 0) {
        /* unlink before close: a waiting writer then finds the file gone and starts afresh */
        unlink(l->path);
        close(l->fd);
    }
    free(l->path);
    l->fd = -1;
    l->path = NULL;
}
