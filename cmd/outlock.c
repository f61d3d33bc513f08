/* outlock.c: see outlock.h. */
#include "outlock.h"

#include <stdlib.h>

#include "common.h"
#include "lock.h"

static lock_file held[4];
static int nheld, registered;

static void release_all(void) {
    while (nheld > 0) lock_release(&held[--nheld]);
}

void outlock_hold(const char *path) {
    af_err e;
    if (nheld == (int)(sizeof held / sizeof *held)) die("%s: too many output locks", path);
    if (lock_acquire(&held[nheld], path, &e)) die_err(&e);
    /* below anything a write pushes later, so the LIFO table stays in order */
    af_tmp_push(held[nheld].path);
    nheld++;
    if (!registered) atexit(release_all), registered = 1;
}
