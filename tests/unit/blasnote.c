/* tests/unit/blasnote.c: which OpenBLAS cores hold an AVX-512 CPU back. */
#include "blasnote.h"

#include "tap.h"

int main(void) {
    ok(blas_core_held_back("Haswell", 1) && blas_core_held_back("Zen", 1) &&
           blas_core_held_back("Sandybridge", 1),
       "AVX2 and AVX cores on an AVX-512 CPU");
    ok(!blas_core_held_back("SkylakeX", 1) && !blas_core_held_back("Cooperlake", 1) &&
           !blas_core_held_back("cooperlake", 1) && !blas_core_held_back("SapphireRapids", 1),
       "AVX-512 cores");
    ok(!blas_core_held_back("Haswell", 0), "a CPU without AVX-512 loses nothing");
    ok(!blas_core_held_back(NULL, 1), "no core name, no note");
    return done_testing();
}
