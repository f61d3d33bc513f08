/* dist.c: MPI when built with AF_MPI and launched by mpirun; one rank otherwise (dist.h). */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef AF_MPI
#include <mpi.h>

static int active, rank, size = 1;

/* Launchers announce themselves in the environment; a program started by hand never calls
 * MPI_Init, so it needs no daemon, no network, and starts as fast as ever. */
static int launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

void dist_init(int *argc, char ***argv) {
    if (active || !launched()) return;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    active = 1;
    atexit(dist_finalize);
}

void dist_finalize(void) {
    if (!active) return;
    active = 0;
    MPI_Finalize();
}

int dist_rank(void) {
    return rank;
}

int dist_size(void) {
    return size;
}

int dist_available(void) {
    return 1;
}

const char *dist_library(void) {
    static char v[MPI_MAX_LIBRARY_VERSION_STRING], out[MPI_MAX_LIBRARY_VERSION_STRING + 8];
    int n = 0;
    MPI_Get_library_version(v, &n);
    for (int i = 0; i < n; i++)
        if (v[i] == ',' || v[i] == '\n') v[i] = 0; /* "Open MPI v4.1.4, package: ..." */
    snprintf(out, sizeof out, "MPI: %s", v);
    return out;
}

void dist_sum_floats(float *x, size_t n) {
    /* counts are ints: large tensors go in pieces */
    const size_t chunk = (size_t)1 << 30;
    for (size_t at = 0; active && size > 1 && at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        MPI_Allreduce(MPI_IN_PLACE, x + at, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void dist_sum_doubles(double *x, int n) {
    if (active && size > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int dist_max_int(int v) {
    if (active && size > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

int dist_bcast_int(int v) {
    if (active && size > 1) MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return v;
}

void dist_barrier(void) {
    if (active && size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void dist_abort(int status) {
    if (active && size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

#else

void dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
}
void dist_finalize(void) {}
int dist_rank(void) {
    return 0;
}
int dist_size(void) {
    return 1;
}
int dist_available(void) {
    return 0;
}
const char *dist_library(void) {
    return "built without MPI";
}
void dist_sum_floats(float *x, size_t n) {
    (void)x, (void)n;
}
void dist_sum_doubles(double *x, int n) {
    (void)x, (void)n;
}
int dist_max_int(int v) {
    return v;
}
int dist_bcast_int(int v) {
    return v;
}
void dist_barrier(void) {}
void dist_abort(int status) {
    exit(status);
}

#endif

void dist_share(int n, int *lo, int *hi) {
    int r = dist_rank(), N = dist_size(), q = n / N, extra = n % N;
    *lo = r * q + (r < extra ? r : extra);
    *hi = *lo + q + (r < extra);
}
