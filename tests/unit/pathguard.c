/* tests/unit/pathguard.c: the same file under other names, files that do not exist yet, and the
 * checks between inputs and outputs. */
#include "pathguard.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

static void touch(const char *p) {
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

int main(void) {
    char dir[] = "/tmp/af-pathguard.XXXXXX";
    if (!mkdtemp(dir) || chdir(dir)) return 1;
    touch("a");
    touch("b");
    mkdir("d", 0700);
    touch("d/x");
    ok(symlink("a", "sym") == 0 && link("a", "hard") == 0, "links made");

    ok(af_same_file("a", "a") && af_same_file("a", "./a") && af_same_file("a", "d/../a"),
       "one file, three spellings");
    ok(af_same_file("a", "sym") && af_same_file("hard", "sym"), "links are the file");
    ok(!af_same_file("a", "b"), "two files");
    ok(af_same_file("new", "./new") && !af_same_file("new", "d/new"), "names not yet made");
    ok(!af_same_file("new", "a"), "an existing file and a new one");

    pathguard g;
    af_err e;
    pathguard_init(&g);
    pathguard_input(&g, "--adapter", "a");
    pathguard_input(&g, "the input", "-");
    pathguard_output(&g, "-o", "-");
    pathguard_output(&g, "-o", "c");
    ok(pathguard_check(&g, &e) == 0, "distinct files pass; '-' is no file");
    pathguard_output(&g, "--log", "./sym");
    ok(pathguard_check(&g, &e) < 0 && strstr(e.msg, "--log ./sym") && strstr(e.msg, "--adapter a"),
       "an output on an input: %s", e.msg);
    pathguard_free(&g);

    pathguard_init(&g);
    pathguard_output(&g, "-o", "new");
    pathguard_output(&g, "--log", "./new");
    ok(pathguard_check(&g, &e) < 0 && strstr(e.msg, "each output needs its own"),
       "two outputs on one new file: %s", e.msg);
    pathguard_free(&g);

    pathguard_init(&g);
    pathguard_input_dir(&g, "--base", "d");
    pathguard_output(&g, "-o", "d/x");
    ok(pathguard_check(&g, &e) < 0 && strstr(e.msg, "--base d/x"), "a file of an input directory");
    pathguard_free(&g);
    pathguard_init(&g);
    pathguard_input_dir(&g, "--base", "d");
    pathguard_output(&g, "-o", "d/y");
    ok(pathguard_check(&g, &e) == 0, "a new file in an input directory");
    pathguard_free(&g);

    unlink("d/x");
    rmdir("d");
    unlink("a"), unlink("b"), unlink("sym"), unlink("hard");
    if (chdir("/") == 0) rmdir(dir);
    return done_testing();
}
