/* bench-rss: runs a command and appends its peak resident set size to what it printed, so a
 * figure covers exactly one measurement in one process (af or the PyTorch peer alike):
 *
 *   bench-rss CMD [ARGS...]    prints CMD's stdout, then "rss_mib=X wall_s=Y" on a line
 *
 * Exits with the command's status (127 when it cannot be run). */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fputs("usage: bench-rss CMD [ARGS...]\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench-rss: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror(argv[1]);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) {
        perror("bench-rss: wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("rss_mib=%.1f wall_s=%.3f\n", ru.ru_maxrss / 1024.0,
           (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
