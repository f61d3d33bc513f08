/* sha256_scalar.c: the checks of sha256.c on the scalar path (AF_NO_SHANI set before the first
 * digest). */
#include <stdlib.h>

int sha256_main(void);
#define main sha256_main
#include "sha256.c"
#undef main

int main(void) {
    setenv("AF_NO_SHANI", "1", 1);
    return sha256_main();
}
