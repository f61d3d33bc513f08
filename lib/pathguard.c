/* pathguard.c: refusing an output that is one of the run's inputs; see pathguard.h. */
#include "pathguard.h"

#include <dirent.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void pathguard_init(pathguard *g) {
    memset(g, 0, sizeof *g);
}

void pathguard_free(pathguard *g) {
    for (int i = 0; i < g->n; i++) free(g->v[i].path);
    free(g->v);
    memset(g, 0, sizeof *g);
}

static void add(pathguard *g, const char *what, const char *path, int output) {
    if (!path || !strcmp(path, "-")) return;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->v = af_realloc(g->v, (size_t)g->cap * sizeof *g->v);
    }
    g->v[g->n++] = (pathguard_entry){what, af_strdup(path), output};
}

void pathguard_input(pathguard *g, const char *what, const char *path) {
    add(g, what, path, 0);
}
void pathguard_output(pathguard *g, const char *what, const char *path) {
    add(g, what, path, 1);
}

void pathguard_input_dir(pathguard *g, const char *what, const char *dir) {
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return; /* the loader reports a missing base with its own message */
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        char *p = af_malloc(n);
        snprintf(p, n, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) add(g, what, p, 0);
        free(p);
    }
    closedir(d);
}

/* The directory part and the last component of a path, for files that do not exist yet. */
static int split_stat(const char *path, struct stat *dir, char **base) {
    char *a = af_strdup(path), *b = af_strdup(path);
    int rc = stat(dirname(a), dir);
    *base = af_strdup(basename(b));
    free(a);
    free(b);
    return rc;
}

int af_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb) return 0; /* one exists, the other not: two files */
    char *na, *nb;
    int ok = split_stat(a, &sa, &na) == 0;
    ok = split_stat(b, &sb, &nb) == 0 && ok;
    int same = ok && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && !strcmp(na, nb);
    free(na);
    free(nb);
    return same;
}

int pathguard_check(const pathguard *g, af_err *e) {
    for (int i = 0; i < g->n; i++) {
        const pathguard_entry *o = &g->v[i];
        if (!o->output) continue;
        for (int j = 0; j < g->n; j++) {
            const pathguard_entry *x = &g->v[j];
            if (j == i || (x->output && j > i)) continue; /* each pair of outputs once */
            if (!af_same_file(o->path, x->path)) continue;
            if (x->output)
                return af_errf(e, "%s %s and %s %s are the same file: each output needs its own",
                               x->what, x->path, o->what, o->path);
            return af_errf(e, "%s %s is the same file as %s %s: refusing to overwrite an input",
                           o->what, o->path, x->what, x->path);
        }
    }
    return 0;
}
