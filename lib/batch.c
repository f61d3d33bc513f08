/* batch.c: per-epoch batch plans with length bucketing, and padded token batches (batch.h). */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

static void plan_reserve(batch_plan *p, int n, int nbatches) {
    if (n > p->cap_n) {
        p->idx = af_realloc(p->idx, (size_t)n * sizeof *p->idx);
        p->cap_n = n;
    }
    if (nbatches + 1 > p->cap_b) {
        p->start = af_realloc(p->start, (size_t)(nbatches + 1) * sizeof *p->start);
        p->cap_b = nbatches + 1;
    }
    p->n = n;
    p->nbatches = nbatches;
}

/* Cuts p->idx into consecutive batches of batch_size (the last possibly short). */
static void plan_cut(batch_plan *p, int n, int batch_size) {
    if (batch_size < 1) batch_size = 1;
    int nb = (n + batch_size - 1) / batch_size;
    plan_reserve(p, n, nb);
    for (int b = 0; b <= nb; b++) p->start[b] = b * batch_size < n ? b * batch_size : n;
}

void batch_plan_sequential(batch_plan *p, int n, int batch_size) {
    plan_cut(p, n, batch_size);
    for (int i = 0; i < n; i++) p->idx[i] = i;
}

void batch_plan_free(batch_plan *p) {
    free(p->idx);
    free(p->start);
    memset(p, 0, sizeof *p);
}

static void shuffle(int *a, int n, af_rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)af_rng_below(r, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

typedef struct {
    int len, pos, idx;
} keyed;

/* Ties broken by shuffled position: a total order, so every libc's qsort agrees. */
static int by_length(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

void batch_plan_epoch(batch_plan *p, const int *lengths, int n, int batch_size, int bucket,
                      uint64_t seed, int epoch) {
    if (batch_size < 1) batch_size = 1;
    plan_cut(p, n, batch_size);
    af_rng r;
    af_rng_seed(&r, seed + (uint64_t)epoch);
    for (int i = 0; i < n; i++) p->idx[i] = i;
    shuffle(p->idx, n, &r);
    if (!lengths || bucket <= 1 || n <= batch_size) return;

    /* A chunk is a whole number of batches, so only the final batch of the epoch can be short. */
    long chunk = (long)bucket * batch_size;
    if (chunk > n) chunk = n;
    keyed *k = af_malloc((size_t)chunk * sizeof *k);
    for (long c0 = 0; c0 < n; c0 += chunk) {
        int m = (int)(c0 + chunk <= n ? chunk : n - c0);
        for (int i = 0; i < m; i++) k[i] = (keyed){lengths[p->idx[c0 + i]], i, p->idx[c0 + i]};
        qsort(k, (size_t)m, sizeof *k, by_length);
        for (int i = 0; i < m; i++) p->idx[c0 + i] = k[i].idx;
    }
    free(k);

    /* Shuffle whole batches: permute batch numbers, then gather. */
    int nb = p->nbatches;
    int *order = af_malloc((size_t)nb * sizeof *order), *idx = af_malloc((size_t)n * sizeof *idx);
    for (int b = 0; b < nb; b++) order[b] = b;
    shuffle(order, nb, &r);
    int at = 0;
    for (int b = 0; b < nb; b++) {
        int s = order[b] * batch_size, e = s + batch_size < n ? s + batch_size : n;
        p->start[b] = at;
        for (int i = s; i < e; i++) idx[at++] = p->idx[i];
    }
    p->start[nb] = at;
    memcpy(p->idx, idx, (size_t)n * sizeof *idx);
    free(idx);
    free(order);
}

int batch_lengths(int *len, const jl_example *ex, int n, int max_len) {
    int cut = 0;
    for (int i = 0; i < n; i++) {
        len[i] = ex[i].len;
        if (max_len > 0 && len[i] > max_len) {
            len[i] = max_len;
            cut++;
        }
    }
    return cut;
}

void batch_tokens_init(batch_tokens *t, int max_batch, int max_len) {
    memset(t, 0, sizeof *t);
    t->max_batch = max_batch;
    t->max_len = max_len;
    size_t cells = (size_t)max_batch * max_len;
    t->input_ids = af_calloc(cells, sizeof(int));
    t->token_type_ids = af_calloc(cells, sizeof(int));
    t->attention_mask = af_calloc(cells, sizeof(int));
    t->lengths = af_calloc((size_t)max_batch, sizeof(int));
}

void batch_tokens_free(batch_tokens *t) {
    free(t->input_ids);
    free(t->token_type_ids);
    free(t->attention_mask);
    free(t->lengths);
    memset(t, 0, sizeof *t);
}

void batch_tokens_fill(batch_tokens *t, const jl_example *ex, const int *idx, int n, int pad_id) {
    if (n < 1 || n > t->max_batch) {
        fprintf(stderr, "batch_tokens_fill: %d rows for a batch of at most %d\n", n, t->max_batch);
        abort();
    }
    int S = 0;
    for (int b = 0; b < n; b++) {
        const jl_example *x = &ex[idx ? idx[b] : b];
        int len = x->len;
        if (len > t->max_len) {
            len = t->max_len;
            t->truncated++;
        }
        t->lengths[b] = len;
        if (len > S) S = len;
    }
    t->B = n;
    t->S = S;
    for (int b = 0; b < n; b++) {
        const jl_example *x = &ex[idx ? idx[b] : b];
        int len = t->lengths[b];
        int *ids = t->input_ids + (size_t)b * S, *tt = t->token_type_ids + (size_t)b * S,
            *am = t->attention_mask + (size_t)b * S;
        for (int s = 0; s < len; s++) {
            ids[s] = x->input_ids[s];
            tt[s] = x->token_type_ids ? x->token_type_ids[s] : 0;
            am[s] = x->attention_mask ? x->attention_mask[s] : 1;
        }
        for (int s = len; s < S; s++) {
            ids[s] = pad_id;
            tt[s] = 0;
            am[s] = 0;
        }
    }
}
