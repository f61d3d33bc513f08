/* pathguard.h: a run's inputs and outputs, checked so that no output is the same file as an
 * input or as another output. Programs register every path they read and write (a base
 * directory counts as each file in it) before doing any work; one check refuses a command line
 * such as `af-fuse --adapter A -o A` that would overwrite what it reads. Paths are compared as
 * files, not strings: a link, `./A` or `dir/../A` names the same file as `A`. */
#ifndef AF_PATHGUARD_H
#define AF_PATHGUARD_H

#include "af.h"

typedef struct {
    const char *what; /* how the user named it: "-o", "--adapter", "the training data" */
    char *path;
    int output;
} pathguard_entry;

typedef struct {
    pathguard_entry *v;
    int n, cap;
} pathguard;

void pathguard_init(pathguard *g);
void pathguard_free(pathguard *g);
/* Registers a path; "-" (a standard stream) and NULL are ignored. */
void pathguard_input(pathguard *g, const char *what, const char *path);
void pathguard_output(pathguard *g, const char *what, const char *path);
/* A directory read as a whole (a base): each regular file in it is an input. */
void pathguard_input_dir(pathguard *g, const char *what, const char *dir);
/* -1 with a message naming both options and the path when an output is the same file as an
 * input or another output. */
int pathguard_check(const pathguard *g, af_err *e);

/* 1 when a and b name the same file: the same device and inode when both exist; when either does
 * not exist yet, the same name in the same directory. */
int af_same_file(const char *a, const char *b);

#endif
