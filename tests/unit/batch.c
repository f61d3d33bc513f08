/* batch.c: batch plans (permutation, determinism, bucketing) and padded token batches. */
#include "batch.h"
#include "tap.h"

#include <string.h>

/* Every index 0..n-1 exactly once. */
static int is_permutation(const batch_plan *p, int n) {
    if (p->n != n || p->start[0] != 0 || p->start[p->nbatches] != n) return 0;
    char *seen = af_calloc((size_t)n + 1, 1);
    int good = 1;
    for (int i = 0; i < n && good; i++) {
        int x = p->idx[i];
        good = x >= 0 && x < n && !seen[x];
        if (good) seen[x] = 1;
    }
    free(seen);
    return good;
}

static int same_plan(const batch_plan *a, const batch_plan *b) {
    return a->n == b->n && a->nbatches == b->nbatches &&
           memcmp(a->idx, b->idx, (size_t)a->n * sizeof(int)) == 0 &&
           memcmp(a->start, b->start, (size_t)(a->nbatches + 1) * sizeof(int)) == 0;
}

/* Padding cells: Σ over batches of (longest × size − Σ lengths). */
static long padding(const batch_plan *p, const int *len) {
    long pad = 0;
    for (int b = 0; b < p->nbatches; b++) {
        const int *ix = batch_plan_batch(p, b);
        int m = 0, sz = batch_plan_size(p, b);
        long sum = 0;
        for (int i = 0; i < sz; i++) {
            if (len[ix[i]] > m) m = len[ix[i]];
            sum += len[ix[i]];
        }
        pad += (long)m * sz - sum;
    }
    return pad;
}

static void test_sequential(void) {
    batch_plan p = {0};
    batch_plan_sequential(&p, 10, 4);
    ok(p.nbatches == 3 && batch_plan_size(&p, 0) == 4 && batch_plan_size(&p, 2) == 2,
       "sequential: 10 by 4 is 4, 4, 2");
    int inorder = 1;
    for (int i = 0; i < 10; i++) inorder &= p.idx[i] == i;
    ok(inorder && batch_plan_batch(&p, 2)[1] == 9, "sequential keeps input order");
    batch_plan_sequential(&p, 0, 4);
    ok(p.nbatches == 0, "no examples, no batches");
    batch_plan_free(&p);
}

static void test_epoch(void) {
    enum { N = 1000, BS = 32 };
    static int len[N];
    af_rng r;
    af_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) len[i] = 5 + (int)af_rng_below(&r, 124);

    batch_plan a = {0}, b = {0}, plain = {0};
    batch_plan_epoch(&a, len, N, BS, BATCH_BUCKET_DEFAULT, 42, 0);
    ok(is_permutation(&a, N), "bucketed epoch is a permutation of the examples");
    ok(a.nbatches == (N + BS - 1) / BS, "%d batches", a.nbatches);
    int short_batches = 0;
    for (int i = 0; i < a.nbatches; i++) short_batches += batch_plan_size(&a, i) != BS;
    ok(short_batches == 1, "only one batch is short (%d)", short_batches);

    batch_plan_epoch(&b, len, N, BS, BATCH_BUCKET_DEFAULT, 42, 0);
    ok(same_plan(&a, &b), "same seed and epoch, same plan");
    batch_plan_epoch(&b, len, N, BS, BATCH_BUCKET_DEFAULT, 41, 1);
    ok(same_plan(&a, &b), "the rng is seeded with seed+epoch");
    batch_plan_epoch(&b, len, N, BS, BATCH_BUCKET_DEFAULT, 42, 1);
    ok(!same_plan(&a, &b) && is_permutation(&b, N), "next epoch, another permutation");

    batch_plan_epoch(&plain, len, N, BS, 0, 42, 0);
    ok(is_permutation(&plain, N), "plain shuffle is a permutation");
    long pb = padding(&a, len), pp = padding(&plain, len);
    ok(pb * 10 < pp, "bucketing pads far less: %ld cells vs %ld", pb, pp);
    batch_plan_epoch(&b, NULL, N, BS, BATCH_BUCKET_DEFAULT, 42, 0);
    ok(same_plan(&b, &plain), "no lengths: the plain shuffle");

    /* Batch order is shuffled: longest lengths do not rise steadily through the epoch. */
    int rises = 0, prev = 0;
    for (int i = 0; i < a.nbatches; i++) {
        const int *ix = batch_plan_batch(&a, i);
        int m = 0;
        for (int j = 0; j < batch_plan_size(&a, i); j++) m = len[ix[j]] > m ? len[ix[j]] : m;
        rises += m >= prev;
        prev = m;
    }
    ok(rises < a.nbatches - 5, "batch order shuffled (%d of %d batches longer than the last)",
       rises, a.nbatches);

    /* Small buckets: several chunks, each sorted on its own. */
    batch_plan_epoch(&b, len, N, BS, 4, 42, 0);
    short_batches = 0;
    for (int i = 0; i < b.nbatches; i++) short_batches += batch_plan_size(&b, i) != BS;
    long p4 = padding(&b, len);
    ok(is_permutation(&b, N) && short_batches == 1, "chunks of 4 batches: permutation, one short");
    ok(p4 > pb && p4 * 3 < pp, "chunks of 4 batches pad between (%ld)", p4);

    batch_plan_epoch(&b, len, 20, BS, BATCH_BUCKET_DEFAULT, 42, 0);
    ok(b.nbatches == 1 && is_permutation(&b, 20), "fewer examples than a batch: one batch");
    batch_plan_free(&a);
    batch_plan_free(&b);
    batch_plan_free(&plain);
}

static void test_tokens(void) {
    int ids0[] = {101, 7, 8, 102}, ids1[] = {101, 5, 102}, ids2[] = {101, 1, 2, 3, 4, 5, 102};
    int tt2[] = {0, 0, 0, 1, 1, 1, 1}, am1[] = {1, 1, 0};
    jl_example ex[3];
    memset(ex, 0, sizeof ex);
    ex[0] = (jl_example){.input_ids = ids0, .len = 4};
    ex[1] = (jl_example){.input_ids = ids1, .attention_mask = am1, .len = 3};
    ex[2] = (jl_example){.input_ids = ids2, .token_type_ids = tt2, .len = 7};

    int len[3];
    ok(batch_lengths(len, ex, 3, 5) == 1 && len[0] == 4 && len[2] == 5,
       "lengths truncated to max_len, one counted");
    ok(batch_lengths(len, ex, 3, 0) == 0 && len[2] == 7, "max_len 0: no limit");

    batch_tokens t;
    batch_tokens_init(&t, 4, 6);
    batch_tokens_fill(&t, ex, (int[]){1, 0}, 2, 0);
    int want_ids[] = {101, 5, 102, 0, 101, 7, 8, 102};
    int want_am[] = {1, 1, 0, 0, 1, 1, 1, 1};
    ok(t.B == 2 && t.S == 4, "padded to the longest row: [2, 4]");
    ok(memcmp(t.input_ids, want_ids, sizeof want_ids) == 0, "ids in plan order, padded with 0");
    ok(memcmp(t.attention_mask, want_am, sizeof want_am) == 0,
       "the example's own mask is kept; padding is masked");
    ok(t.lengths[0] == 3 && t.lengths[1] == 4 && t.truncated == 0, "row lengths 3, 4");

    batch_tokens_fill(&t, ex, (int[]){2, 1, 0}, 3, 99);
    int want2[] = {101, 1, 2, 3, 4, 5};
    int wtt2[] = {0, 0, 0, 1, 1, 1};
    ok(t.S == 6 && memcmp(t.input_ids, want2, sizeof want2) == 0,
       "a long row keeps its first max_len tokens");
    ok(memcmp(t.token_type_ids, wtt2, sizeof wtt2) == 0 && t.token_type_ids[6] == 0,
       "token types copied, 0 when absent");
    ok(t.input_ids[6 + 3] == 99 && t.input_ids[2 * 6 + 5] == 99, "pad_id used for padding");
    ok(t.truncated == 1, "truncation counted (%ld)", t.truncated);

    batch_tokens_fill(&t, ex, NULL, 2, 0);
    ok(t.S == 4 && t.input_ids[4] == 101 && t.input_ids[5] == 5, "idx NULL takes ex[0..n)");
    batch_tokens_free(&t);
}

int main(void) {
    test_sequential();
    test_epoch();
    test_tokens();
    return done_testing();
}
