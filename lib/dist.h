/* dist.h: data parallelism on MPI (issue 18), or nothing at all.
 *
 * Built with AF_MPI (make MPI=1, or Open MPI's headers detected), a program started by mpirun
 * (or any launcher that sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK) joins MPI_COMM_WORLD:
 * every rank holds the whole model, takes its share of every global batch, and the loop
 * (loop.c) sums the gradients with MPI_Allreduce before clipping and the optimizer step, so N
 * ranks take the steps one process takes. A program started without a launcher never calls
 * MPI_Init and behaves exactly as one built without MPI: one rank, and every call below is a
 * no-op. Rank 0 alone prints, evaluates and writes files. */
#ifndef AF_DIST_H
#define AF_DIST_H

#include "af.h"

/* Joins MPI when launched by mpirun (see above); safe to call more than once. */
void dist_init(int *argc, char ***argv);
/* Leaves MPI (at exit: dist_init registers it). */
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* 1 when this build can run distributed (AF_MPI). */
int dist_available(void);
/* "MPI: Open MPI v4.1.4" or "built without MPI": what --version reports. */
const char *dist_library(void);

/* The rows [*lo, *hi) of a batch of n that this rank takes: contiguous shares in rank order,
 * sizes differing by at most one, the larger ones first. */
void dist_share(int n, int *lo, int *hi);

/* In-place sums over all ranks (no-ops on one rank). */
void dist_sum_floats(float *x, size_t n);
void dist_sum_doubles(double *x, int n);
/* The largest of every rank's v. */
int dist_max_int(int v);
/* Rank 0's v, on every rank. */
int dist_bcast_int(int v);
void dist_barrier(void);
/* Ends the program with status; under MPI every rank of the job (MPI_Abort), since the others
 * would otherwise wait for this one in their next collective, and MPI_Finalize with them. */
void dist_abort(int status) __attribute__((noreturn));

#endif
