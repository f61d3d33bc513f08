/* batch.h: which examples go together (a batch plan per epoch) and the padded token arrays one
 * batch feeds the encoder.
 *
 * Training batches are length-bucketed so little compute goes to padding: shuffle all examples,
 * cut them into chunks of bucket×batch_size, sort each chunk by length, cut chunks into batches,
 * shuffle the batch order. The shuffles use af_rng seeded with seed+epoch, so epoch e of a run is
 * the same whatever happened before it (a resumed run sees the batches the interrupted one would
 * have). Evaluation uses plain sequential batches, so outputs keep input order. */
#ifndef AF_BATCH_H
#define AF_BATCH_H

#include "af.h"
#include "jsonl.h"

#define BATCH_BUCKET_DEFAULT 50

/* An epoch's batches. Zero-initialise (batch_plan p = {0}) and reuse across epochs: the arrays
 * are grown, not reallocated each time. */
typedef struct {
    int *idx;   /* [n]: example indices; batch b is idx[start[b] .. start[b+1]) */
    int *start; /* [nbatches + 1] */
    int n, nbatches;
    int cap_n, cap_b;
} batch_plan;

/* Batches of batch_size in order 0..n-1; the last may be smaller. */
void batch_plan_sequential(batch_plan *p, int n, int batch_size);
/* A training epoch (epoch counted from 0), as above. lengths [n] may be NULL, or bucket <= 1,
 * for a plain shuffle. Every batch but possibly one has batch_size examples. */
void batch_plan_epoch(batch_plan *p, const int *lengths, int n, int batch_size, int bucket,
                      uint64_t seed, int epoch);
void batch_plan_free(batch_plan *p);

static inline int batch_plan_size(const batch_plan *p, int b) {
    return p->start[b + 1] - p->start[b];
}
static inline const int *batch_plan_batch(const batch_plan *p, int b) {
    return p->idx + p->start[b];
}

/* Token lengths after truncation to max_len (max_len <= 0: no limit), for batch_plan_epoch.
 * Returns how many examples are longer than max_len, for the one warning a tool gives. */
int batch_lengths(int *len, const jl_example *ex, int n, int max_len);

/* One padded batch, [B, S] row-major with S the longest kept length in the batch. Allocated
 * once for max_batch × max_len, refilled per batch without allocating. */
typedef struct {
    int max_batch, max_len;
    int B, S;
    int *input_ids;      /* [B, S], pad_id beyond each row's length */
    int *token_type_ids; /* [B, S], 0 in padding */
    int *attention_mask; /* [B, S], the example's own mask, 0 in padding */
    int *lengths;        /* [B] tokens kept per row */
    long truncated;      /* rows cut to max_len, summed over every fill */
} batch_tokens;

void batch_tokens_init(batch_tokens *t, int max_batch, int max_len);
void batch_tokens_free(batch_tokens *t);
/* Fills rows from ex[idx[0]], …, ex[idx[n-1]] (idx NULL: ex[0..n)). Examples longer than
 * max_len keep their first max_len tokens. n must be in 1..max_batch. */
void batch_tokens_fill(batch_tokens *t, const jl_example *ex, const int *idx, int n, int pad_id);

#endif
