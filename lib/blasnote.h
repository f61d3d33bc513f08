/* blasnote.h: telling a user that the environment holds OpenBLAS back. OPENBLAS_CORETYPE forces
 * OpenBLAS's kernels for one CPU family (some environments set Haswell, the AVX2 kernels, on
 * AVX-512 machines); af respects it, but the products then run at about half the rate the CPU
 * allows, and a user comparing timings deserves to know why. */
#ifndef AF_BLASNOTE_H
#define AF_BLASNOTE_H

#include <stddef.h>

/* 1 when OpenBLAS core `core` (openblas_get_corename's names) lacks AVX-512 kernels that a CPU
 * with AVX-512 (`cpu_avx512`) could run: Haswell, Zen, Sandybridge and older; 0 otherwise. */
int blas_core_held_back(const char *core, int cpu_avx512);
/* The note for this process (OPENBLAS_CORETYPE set, the CPU has AVX-512, the core chosen lacks
 * it), written into buf; NULL when there is nothing to say. */
const char *blas_note(char *buf, size_t n);

#endif
