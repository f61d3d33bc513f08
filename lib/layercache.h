/* layercache.h: the frozen lower layers' output, kept per training example (AdapterDrop).
 *
 * With no adapter below layer K (--drop-layers K), the hidden states entering layer K depend on
 * nothing that trains, and with dropout off below K (bert_forward_begin) they are the same in
 * every epoch: the first epoch computes them and puts them here, every later one reads them
 * back and runs only layers K and up (Rücklé et al., "AdapterDrop", EMNLP 2021, section 4).
 *
 * Example i keeps its own len[i] rows of H floats, not its batch's padding: in memory when all
 * of them fit the budget, else in one file under a directory. The file is unlinked as soon as it
 * is created (only the open descriptor holds it), so neither the end of the run nor a crash
 * leaves anything behind that a later run could mistake for a valid cache; whether an example
 * is in it is known only to this process. */
#ifndef AF_LAYERCACHE_H
#define AF_LAYERCACHE_H

#include <stdint.h>

#include "af.h"

typedef enum { LAYERCACHE_MEMORY, LAYERCACHE_FILE } layercache_where;

typedef struct layercache {
    int where; /* layercache_where */
    int n, H;
    uint64_t *off;      /* [n + 1] offsets in floats: example i is [off[i], off[i + 1]) */
    unsigned char *has; /* [n] example i is in */
    float *mem;         /* LAYERCACHE_MEMORY: off[n] floats */
    int fd;             /* LAYERCACHE_FILE: the unlinked file */
    char *path;         /* its name while it had one, for messages */
    int failed;         /* a read or write failed: err says how */
    af_err err;
} layercache;

/* The bytes n examples of len[i] rows of H floats take. */
uint64_t layercache_bytes(int n, const int *len, int H);

/* An empty cache for n examples: in memory when layercache_bytes <= budget, else in a file made
 * under dir (dir NULL: $TMPDIR, else /tmp). 0, or -1 with e naming the directory. */
int layercache_open(layercache *c, int n, const int *len, int H, uint64_t budget, const char *dir,
                    af_err *e);
/* Whether example i is in. */
int layercache_has(const layercache *c, int i);
/* Puts example i's len[i] rows of H floats, x (contiguous, as a sequence's rows are in a batch).
 * -1 on a write error (c->failed set, c->err names the file). */
int layercache_put(layercache *c, int i, const float *x);
/* Reads example i's rows back into x. -1 when it is not in, or on a read error (c->failed,
 * c->err). */
int layercache_get(layercache *c, int i, float *x);
/* Frees the memory or closes the file (which then disappears). */
void layercache_close(layercache *c);

#endif
