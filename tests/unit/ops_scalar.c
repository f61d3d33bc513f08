/* ops_scalar.c: the checks of ops.c on the scalar paths, which define what the AVX-512 paths
 * compute (AF_NO_AVX512 turns the vector paths off before the first kernel runs). */
#include <stdlib.h>

int ops_main(void);
#define main ops_main
#include "ops.c"
#undef main

int main(void) {
    setenv("AF_NO_AVX512", "1", 1);
    return ops_main();
}
