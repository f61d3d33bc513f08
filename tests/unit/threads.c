/* threads.c: af's thread pool (af.c) and what runs on it: every index exactly once, the same
 * results with 1, 2 and 3 threads (matrix products, attention with dropout), in-place activation
 * gradients, and the encoder's [CLS]-only last layer (bert_acts_cls_only) against the full one,
 * forward and backward. */
#include "bert.h"
#include "ops.h"
#include "tap.h"

#include <string.h>

typedef struct {
    int *hits;
} cover_ctx;

static void cover(void *p, int lo, int hi) {
    cover_ctx *c = p;
    for (int i = lo; i < hi; i++) __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
}

static void test_cover(void) {
    static const int sizes[] = {1, 2, 3, 7, 64, 1000, 4097};
    int bad = 0;
    for (int t = 1; t <= 3; t++) {
        af_set_threads(t);
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            int n = sizes[s];
            cover_ctx c = {calloc(n, sizeof(int))};
            for (int rep = 0; rep < 50; rep++) af_parallel(n, cover, &c);
            for (int i = 0; i < n; i++) bad |= c.hits[i] != 50;
            free(c.hits);
        }
    }
    ok(!bad, "af_parallel runs every index exactly once (1-3 threads, 7 sizes, 50 times each)");
}

static float *randn(af_rng *r, size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = af_rng_normal(r);
    return x;
}

static void test_gemm(af_rng *r) {
    int M = 300, N = 170, K = 90;
    float *A = randn(r, (size_t)M * K), *B = randn(r, (size_t)N * K), *C1 = calloc(M * N, 4),
          *C2 = calloc(M * N, 4), *C3 = calloc(N * K, 4), *C4 = calloc(N * K, 4);
    af_set_threads(1);
    linear_forward(C1, A, B, B, M, K, N);
    gemm(1, 0, N, K, M, 1.0f, C1, N, A, K, 0.0f, C3, K);
    af_set_threads(2);
    linear_forward(C2, A, B, B, M, K, N);
    gemm(1, 0, N, K, M, 1.0f, C2, N, A, K, 0.0f, C4, K);
    ok(tap_relerr(C2, C1, (size_t)M * N) < 1e-6 && tap_relerr(C4, C3, (size_t)N * K) < 1e-6,
       "products cut between 2 threads equal the single-threaded ones (%.1e, %.1e)",
       tap_relerr(C2, C1, (size_t)M * N), tap_relerr(C4, C3, (size_t)N * K));
    free(A), free(B), free(C1), free(C2), free(C3), free(C4);
}

static void test_attention(af_rng *r) {
    int B = 3, S = 20, NH = 4, D = 8, H = NH * D, M = B * S;
    size_t P = (size_t)B * NH * S * S;
    float *qkv = randn(r, (size_t)M * 3 * H), *dctx = randn(r, (size_t)M * H);
    int *mask = malloc(M * sizeof(int));
    for (int i = 0; i < M; i++) mask[i] = i % S < S - 3 * (i / S);
    float *ctx[3], *probs[3], *dq[3];
    for (int t = 1; t <= 3; t++) {
        af_set_threads(t);
        ctx[t - 1] = calloc(M * H, 4), probs[t - 1] = calloc(P, 4);
        dq[t - 1] = calloc((size_t)M * 3 * H, 4);
        attention_forward(ctx[t - 1], probs[t - 1], NULL, qkv, mask, B, S, NH, D, 0.2f, 77);
        attention_backward(dq[t - 1], NULL, dctx, qkv, probs[t - 1], NULL, B, S, NH, D, 0.2f, 77);
    }
    int same = 1;
    for (int t = 1; t < 3; t++)
        same &= !memcmp(ctx[t], ctx[0], (size_t)M * H * 4) &&
                !memcmp(dq[t], dq[0], (size_t)M * 3 * H * 4);
    ok(same, "attention with dropout: bit-identical outputs and gradients on 1, 2, 3 threads");
    for (int t = 0; t < 3; t++) free(ctx[t]), free(probs[t]), free(dq[t]);
    free(qkv), free(dctx), free(mask);
}

/* The last layer computed for [CLS] only must give the same [CLS] outputs and, for a gradient
 * that flows in at [CLS] only, the same input gradients and weight gradients. */
static void test_cls_only(void) {
    af_set_threads(2);
    bert_config c = {.vocab_size = 50, .hidden = 16, .layers = 2, .heads = 2, .ffn = 24,
                     .max_pos = 16, .type_vocab = 2, .pad_id = 0, .act = AF_ACT_GELU,
                     .ln_eps = 1e-12f, .hidden_dropout = 0, .attn_dropout = 0};
    bert m;
    bert_init_random(&m, &c, 5);
    int B = 3, S = 7, M = B * S, H = c.hidden;
    int ids[21], mask[21];
    af_rng r;
    af_rng_seed(&r, 9);
    for (int i = 0; i < M; i++) ids[i] = 1 + (int)af_rng_below(&r, 49), mask[i] = i % S < S - i / S;
    bert_batch b = {B, S, ids, NULL, mask};
    float *dout = calloc(M * H, 4);
    for (int k = 0; k < B; k++)
        for (int j = 0; j < H; j++) dout[(size_t)k * S * H + j] = af_rng_normal(&r);
    float *out[2], *dx[2];
    bert_grads g[2];
    for (int v = 0; v < 2; v++) {
        af_arena a;
        af_arena_init(&a, bert_acts_bytes(&c, B, S, 1));
        bert_acts *A = bert_acts_new(&a, &c, B, S, 1);
        bert_acts_cls_only(A, v);
        const float *h = bert_forward(&m, A, &b, NULL, 1, NULL);
        out[v] = malloc((size_t)B * H * 4);
        for (int k = 0; k < B; k++) memcpy(out[v] + k * H, h + (size_t)k * S * H, H * 4);
        bert_grads_init(&g[v], &c);
        bert_backward(&m, A, dout, NULL, &g[v]);
        dx[v] = malloc((size_t)M * H * 4);
        memcpy(dx[v], bert_dhidden(A, -1), (size_t)M * H * 4);
        af_arena_free(&a);
    }
    ok(tap_maxdiff(out[1], out[0], (size_t)B * H) < 1e-5, "[CLS]-only last layer: same outputs (%.1e)",
       tap_maxdiff(out[1], out[0], (size_t)B * H));
    ok(tap_maxdiff(dx[1], dx[0], (size_t)M * H) < 1e-5,
       "[CLS]-only last layer: same gradient of the embeddings (%.1e)",
       tap_maxdiff(dx[1], dx[0], (size_t)M * H));
    size_t n = m.nparams;
    ok(tap_relerr(g[1].mem, g[0].mem, n) < 1e-5, "[CLS]-only last layer: same weight gradients (%.1e)",
       tap_relerr(g[1].mem, g[0].mem, n));
    for (int v = 0; v < 2; v++) free(out[v]), free(dx[v]), bert_grads_free(&g[v]);
    free(dout);
    bert_free(&m);
}

/* act_backward_set, in place, equals act_backward into zeros (every activation, 2 threads). */
static void test_act_set(af_rng *r) {
    size_t n = 70001;
    float *u = randn(r, n), *d = randn(r, n), *want = calloc(n, 4), *got = malloc(n * 4);
    int bad = 0;
    af_set_threads(2);
    for (int act = AF_ACT_RELU; act <= AF_ACT_SIGMOID; act++) {
        memset(want, 0, n * 4);
        act_backward(want, d, u, n, act);
        memcpy(got, d, n * 4);
        act_backward_set(got, got, u, n, act);
        bad |= tap_maxdiff(got, want, n) > 0;
    }
    ok(!bad, "act_backward_set in place equals act_backward into zeros, every activation");
    free(u), free(d), free(want), free(got);
}

int main(void) {
    af_rng r;
    af_rng_seed(&r, 3);
    test_cover();
    test_gemm(&r);
    test_attention(&r);
    test_act_set(&r);
    test_cls_only();
    af_set_threads(1);
    return done_testing();
}
