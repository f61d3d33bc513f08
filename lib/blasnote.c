/* blasnote.c: see blasnote.h. */
#include "blasnote.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int blas_core_held_back(const char *core, int cpu_avx512) {
    /* OpenBLAS's x86-64 cores with AVX-512 kernels; every other core name runs narrower ones */
    static const char *const wide[] = {"SkylakeX", "Cooperlake", "SapphireRapids", "Zen4"};
    if (!cpu_avx512 || !core) return 0;
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++)
        if (!strcasecmp(core, wide[i])) return 0;
    return 1;
}

static int cpu_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

const char *blas_note(char *buf, size_t n) {
    const char *forced = getenv("OPENBLAS_CORETYPE");
    if (!forced || !*forced) return NULL; /* OpenBLAS chose by CPU: nothing held back */
    const char *core = openblas_get_corename();
    if (!blas_core_held_back(core, cpu_avx512())) return NULL;
    snprintf(buf, n,
             "note: OPENBLAS_CORETYPE=%s has OpenBLAS run its %s kernels on a CPU with AVX-512; "
             "matrix products could run up to twice as fast without that setting",
             forced, core);
    return buf;
}
