/* atomic.c: af_write_atomic's durability and its cleanup on a second signal (issue 19.10), and
 * lock.c's one writer per output (19.12).
 *
 * fsync is replaced below: this program's definition wins over libc's for the calls libaf.a
 * makes, so the test sees which descriptors are synced, in which order, and can send the
 * "second Ctrl-C" at the very moment a checkpoint is being synced. */
#include "af.h"
#include "lock.h"
#include "signals.h"
#include "tap.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int dir_syncs, file_syncs, dir_sync_saw_file, signal_on_file_sync;
static const char *watch; /* the final path: does it exist when its directory is synced? */

int fsync(int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        dir_syncs++;
        if (watch && access(watch, F_OK) == 0) dir_sync_saw_file = 1;
    } else {
        file_syncs++;
        if (signal_on_file_sync) raise(SIGINT);
    }
    return (int)syscall(SYS_fsync, fd);
}

static int write_hello(FILE *f, void *ctx, af_err *e) {
    (void)ctx;
    if (fputs("hello\n", f) < 0) return af_errf(e, "write failed");
    return 0;
}

/* Entries of dir whose name contains part. */
static int count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, part)) n++;
    if (d) closedir(d);
    return n;
}

static char root[64];

static int second_signal_while_syncing(void) {
    signal(SIGINT, SIG_DFL);
    af_err e;
    if (signals_install(&e)) return 2;
    raise(SIGINT); /* the first Ctrl-C: the loop would now write its checkpoint */
    char path[128];
    snprintf(path, sizeof path, "%s/out.ckpt", root);
    signal_on_file_sync = 1; /* the second Ctrl-C comes during the fsync */
    af_write_atomic(path, write_hello, NULL, &e);
    return 3; /* must not get here: the second signal exits at once */
}

static int second_signal_in_a_directory(void) {
    signal(SIGINT, SIG_DFL);
    af_err e;
    if (signals_install(&e)) return 2;
    raise(SIGINT);
    /* af-pretrain's checkpoint: a temp directory, files in it, one of them being written */
    char dir[128], file[160];
    snprintf(dir, sizeof dir, "%s/model.ckpt.tmp.XXXXXX", root);
    if (!mkdtemp(dir)) return 4;
    af_tmp_push(dir);
    snprintf(file, sizeof file, "%s/config.json", dir);
    af_tmp_push(file);
    FILE *f = fopen(file, "w");
    if (!f) return 5;
    fclose(f);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    af_tmp_push(file); /* registered, never written: cleanup must not stop there */
    snprintf(file, sizeof file, "%s/vocab.txt", dir);
    signal_on_file_sync = 1;
    af_write_atomic(file, write_hello, NULL, &e);
    return 3;
}

static int run_child(int (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(fn());
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/af-atomic.XXXXXX");
    if (!mkdtemp(root)) return 1;
    char path[128];
    snprintf(path, sizeof path, "%s/a.txt", root);
    af_err e;
    watch = path;
    int rc = af_write_atomic(path, write_hello, NULL, &e);
    ok(rc == 0 && access(path, F_OK) == 0, "af_write_atomic writes the file");
    ok(file_syncs == 1, "the file is fsynced once (%d)", file_syncs);
    ok(dir_syncs == 1 && dir_sync_saw_file,
       "then its directory, after the rename, so the new name is durable (%d, %d)", dir_syncs,
       dir_sync_saw_file);
    ok(af_fsync_parent("a.txt", &e) == 0 && af_fsync_parent("/", &e) == 0 &&
           af_fsync_parent("/tmp/", &e) == 0 && dir_syncs == 4,
       "af_fsync_parent: a bare name syncs '.', '/' and 'dir/' work");
    ok(af_fsync_parent("/nonexistent/x", &e) == -1 && strstr(e.msg, "/nonexistent"),
       "af_fsync_parent names a directory it cannot open: %s", e.msg);
    watch = NULL;

    int st = run_child(second_signal_while_syncing);
    ok(st == 130, "a second SIGINT while the checkpoint is fsynced exits 130 (%d)", st);
    ok(count_entries(root, ".tmp.") == 0 && count_entries(root, "out.ckpt") == 0,
       "and leaves no out.ckpt.tmp.XXXXXX (%d temp files)", count_entries(root, ".tmp."));

    st = run_child(second_signal_in_a_directory);
    ok(st == 130, "a second SIGINT inside a temp directory's write exits 130 (%d)", st);
    ok(count_entries(root, "model.ckpt") == 0,
       "and removes the directory with everything in it (%d left)",
       count_entries(root, "model.ckpt"));

    /* the table: a mark releases what came after it, and cleanup empties it */
    snprintf(path, sizeof path, "%s/b.txt", root);
    FILE *f = fopen(path, "w");
    fclose(f);
    int mark = af_tmp_push(path);
    af_tmp_release(mark);
    af_tmp_cleanup();
    ok(access(path, F_OK) == 0, "a released path is not removed");
    af_tmp_push(path);
    af_tmp_cleanup();
    ok(access(path, F_OK) != 0, "a registered one is");

    /* lock.c */
    snprintf(path, sizeof path, "%s/out.st", root);
    lock_file a, b;
    ok(lock_acquire(&a, path, &e) == 0, "the first writer takes the lock");
    char lp[160];
    snprintf(lp, sizeof lp, "%s.lock", path);
    ok(access(lp, F_OK) == 0, "OUT.lock exists while it is held");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        lock_file c;
        af_err e2;
        int r = lock_acquire(&c, path, &e2);
        _exit(r == -1 && strstr(e2.msg, "another af program is writing it") ? 42 : 1);
    }
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 42, "a second process is refused, with a reason");
    lock_release(&a);
    ok(access(lp, F_OK) != 0, "release removes OUT.lock");
    ok(lock_acquire(&b, path, &e) == 0, "then the lock can be taken again");
    lock_release(&b);
    snprintf(path, sizeof path, "%s/nodir/out.st", root);
    ok(lock_acquire(&b, path, &e) == -1 && strstr(e.msg, "nodir/out.st.lock"),
       "a lock that cannot be created names its file: %s", e.msg);

    snprintf(path, sizeof path, "%s/a.txt", root);
    unlink(path);
    ok(rmdir(root) == 0, "nothing else was left behind");
    return done_testing();
}
