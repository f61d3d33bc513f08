/* encoder.c: the C encoder against the PyTorch fixtures of scripts/gen-fixtures.py
 * (tests/fixtures/encoder/, BERT) and scripts/gen-arch-fixtures.py (tests/fixtures/arch/,
 * RoBERTa and DistilBERT): hidden states of every layer of F32, F16 and BF16 checkpoints, the
 * gradients with respect to them, every weight gradient, and the hook plumbing at two sites. */
#include "bert.h"
#include "ops.h"
#include "tap.h"
#include "testhook.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HIDDEN_TOL 1e-4 /* max abs error, float32 weights */
#define GRAD_TOL 1e-3   /* relative L2 error */

static const char *top(void) {
    const char *t = getenv("AF_TOP");
    return t ? t : ".";
}

static char *fixture(const char *rel) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 1024, "%s/tests/fixtures/%s", top(), rel);
    return p;
}

/* A tensor of an expected file as float32 (malloc'ed), or NULL with a failed test. */
static float *get(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    af_err e;
    if (!t) {
        ok(0, "%s: tensor %s present", f->path, name);
        return NULL;
    }
    float *x = malloc(t->numel * sizeof(float) + 1);
    if (st_to_f32(t, x, t->numel, &e)) {
        ok(0, "%s", e.msg);
        free(x);
        return NULL;
    }
    if (n) *n = t->numel;
    return x;
}

static int *get_ints(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_I32) return NULL;
    int *x = malloc(t->numel * sizeof(int));
    memcpy(x, t->data, t->numel * sizeof(int));
    return x;
}

typedef struct {
    st_file f;
    int *ids, *types, *mask;
    bert_batch b;
} expected;

static int open_expected(expected *x, const char *path) {
    af_err e;
    if (!ok(st_open(&x->f, path, &e) == 0, "open %s", path)) {
        diag("%s", e.msg);
        return -1;
    }
    x->ids = get_ints(&x->f, "input_ids");
    x->types = get_ints(&x->f, "token_type_ids");
    x->mask = get_ints(&x->f, "attention_mask");
    const st_tensor *t = st_find(&x->f, "input_ids");
    if (!ok(x->ids && x->types && x->mask && t->ndim == 2, "inputs in %s", path)) return -1;
    x->b = (bert_batch){(int)t->shape[0], (int)t->shape[1], x->ids, x->types, x->mask};
    return 0;
}

static void close_expected(expected *x) {
    st_close(&x->f);
    free(x->ids), free(x->types), free(x->mask);
}

static int load(bert *m, const char *dir) {
    af_err e;
    int rc = bert_load(m, dir, &e);
    if (!ok(rc == 0, "load %s", dir)) diag("%s", e.msg);
    return rc;
}

/* Compares bert_hidden(l) for every l with "<prefix>.<l+1>" of the expected file. */
static void check_hidden(const bert_acts *A, const expected *x, int L, const char *prefix,
                         double tol, const char *what) {
    for (int l = -1; l < L; l++) {
        char name[64];
        size_t n;
        snprintf(name, sizeof name, "%s.%d", prefix, l + 1);
        float *want = get(&x->f, name, &n);
        if (!want) continue;
        char where[32];
        snprintf(where, sizeof where, l < 0 ? "embeddings" : "layer %d", l);
        double d = tap_maxdiff(bert_hidden(A, l), want, n);
        ok(d <= tol, "%s: %s vs %s after %s: max abs error %.2g <= %.0e", what, "C", prefix, where,
           d, tol);
        free(want);
    }
}

static double loss_of(const float *out, const float *w, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * w[i];
    return s;
}

/* Forward in eval mode and compare every layer. */
static void test_forward(const char *dir, const char *what, int check_unrounded) {
    bert m;
    expected x;
    if (load(&m, fixture(dir))) return;
    char exp[256];
    snprintf(exp, sizeof exp, "%s/expected.safetensors", fixture(dir));
    if (open_expected(&x, exp)) return;
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, x.b.B, x.b.S, 0));
    bert_acts *A = bert_acts_new(&a, &m.cfg, x.b.B, x.b.S, 0);
    ok(bert_forward(&m, A, &x.b, NULL, 0, NULL) != NULL, "%s: forward", what);
    check_hidden(A, &x, m.cfg.layers, "hidden", HIDDEN_TOL, what);
    /* The reference for hidden_unrounded used the float32 weights before F16 rounding: F16 keeps
     * 11 significant bits (relative error up to 2^-11 ≈ 5e-4 per weight), and through the layers
     * that grows to ~4e-3 here, so this comparison only shows that conversion is not off. */
    if (check_unrounded) check_hidden(A, &x, m.cfg.layers, "hidden_unrounded", 1e-2, what);
    af_arena_free(&a);
    close_expected(&x);
    bert_free(&m);
}

/* Which fixture's gradients are compared (a prefix of the test names). */
static const char *WHAT = "";

/* Compares each weight gradient tensor of g with the expected one (loaded as a model). */
static void compare_grads(const bert_weights *g, const bert_weights *w, const bert_config *c) {
    size_t H = c->hidden, F = c->ffn;
#define CMP(field, n, fmt, ...)                                                                    \
    do {                                                                                           \
        double r = tap_relerr(g->field, w->field, (n));                                            \
        ok(r <= GRAD_TOL, "%s full backward: d loss / d " fmt ": relative error %.2g", WHAT,       \
           __VA_ARGS__, r);                                                                        \
    } while (0)
    CMP(word_emb, c->vocab_size * H, "%s", "word_embeddings");
    CMP(pos_emb, c->max_pos * H, "%s", "position_embeddings");
    if (c->type_vocab) CMP(type_emb, c->type_vocab * H, "%s", "token_type_embeddings");
    CMP(emb_ln_w, H, "%s", "embeddings.LayerNorm.weight");
    CMP(emb_ln_b, H, "%s", "embeddings.LayerNorm.bias");
    for (int l = 0; l < c->layers; l++) {
        CMP(layer[l].qkv_w, 3 * H * H, "layer %d query/key/value weight", l);
        CMP(layer[l].qkv_b, 3 * H, "layer %d query/key/value bias", l);
        CMP(layer[l].ao_w, H * H, "layer %d attention.output.dense.weight", l);
        CMP(layer[l].ao_b, H, "layer %d attention.output.dense.bias", l);
        CMP(layer[l].ln1_w, H, "layer %d attention.output.LayerNorm.weight", l);
        CMP(layer[l].ln1_b, H, "layer %d attention.output.LayerNorm.bias", l);
        CMP(layer[l].ff1_w, F * H, "layer %d intermediate.dense.weight", l);
        CMP(layer[l].ff1_b, F, "layer %d intermediate.dense.bias", l);
        CMP(layer[l].ff2_w, H * F, "layer %d output.dense.weight", l);
        CMP(layer[l].ff2_b, H, "layer %d output.dense.bias", l);
        CMP(layer[l].ln2_w, H, "layer %d output.LayerNorm.weight", l);
        CMP(layer[l].ln2_b, H, "layer %d output.LayerNorm.bias", l);
    }
#undef CMP
}

static void check_dhidden(const bert_acts *A, const expected *x, int from, int L,
                          const char *what) {
    for (int l = -1; l < L; l++) {
        const float *d = bert_dhidden(A, l);
        if (l < from) {
            ok(d == NULL, "%s: no gradient below the lowest hooked site (hidden %d)", what, l);
            continue;
        }
        char name[64];
        size_t n;
        snprintf(name, sizeof name, "dhidden.%d", l + 1);
        float *want = get(&x->f, name, &n);
        if (!want) continue;
        double r = d ? tap_relerr(d, want, n) : INFINITY;
        ok(r <= GRAD_TOL, "%s: d loss / d hidden %d: relative error %.2g", what, l, r);
        free(want);
    }
}

static void test_backward(void) {
    bert m, gm;
    expected x;
    if (load(&m, fixture("encoder/f32")) || load(&gm, fixture("encoder/f32/grad"))) return;
    if (open_expected(&x, fixture("encoder/f32/expected.safetensors"))) return;
    /* The reference ran in eval mode; train mode with dropout 0 must give the same numbers. */
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    int L = m.cfg.layers, M = x.b.B * x.b.S, H = m.cfg.hidden;
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, x.b.B, x.b.S, 1));
    bert_acts *A = bert_acts_new(&a, &m.cfg, x.b.B, x.b.S, 1);
    af_rng rng;
    af_rng_seed(&rng, 1);
    size_t n;
    float *R = get(&x.f, "loss_weight", &n), *loss = get(&x.f, "loss", NULL);
    const float *out = bert_forward(&m, A, &x.b, NULL, 1, &rng);
    if (!ok(out && R && loss && n == (size_t)M * H, "f32 train-mode forward")) return;
    check_hidden(A, &x, L, "hidden", HIDDEN_TOL, "f32 train mode, dropout 0");
    double lv = loss_of(out, R, n);
    ok(fabs(lv - loss[0]) <= 1e-4 * fabs(loss[0]), "loss %.6f, PyTorch %.6f", lv, loss[0]);

    /* full mode: every weight */
    bert_grads g;
    bert_grads_init(&g, &m.cfg);
    bert_backward(&m, A, R, NULL, &g);
    check_dhidden(A, &x, -1, L, "full backward");
    compare_grads(&g.g, &gm.w, &m.cfg);

    /* With the config's dropout (0.1) but a train = 0 forward, backward differentiates the
     * inference function: the same gradients. */
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0.1f;
    bert_grads g2;
    bert_grads_init(&g2, &m.cfg);
    bert_forward(&m, A, &x.b, NULL, 1, &rng); /* leaves dropout masks behind */
    bert_forward(&m, A, &x.b, NULL, 0, NULL);
    bert_backward(&m, A, R, NULL, &g2);
    ok(tap_relerr(g2.mem, gm.mem, gm.nparams) <= GRAD_TOL,
       "backward after an inference forward: the dropout-free gradients");
    bert_grads_free(&g2);
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    bert_forward(&m, A, &x.b, NULL, 1, &rng);

    /* Accumulation: a second backward into the same grads doubles them. */
    bert_backward(&m, A, R, NULL, &g);
    for (size_t i = 0; i < gm.nparams; i++) gm.mem[i] *= 2;
    ok(tap_relerr(g.mem, gm.mem, gm.nparams) <= GRAD_TOL, "a second backward accumulates");
    bert_grads_free(&g);

    /* Frozen mode with no hook: nothing to do, so nothing is computed. */
    bert_forward(&m, A, &x.b, NULL, 1, &rng);
    bert_backward(&m, A, R, NULL, NULL);
    ok(bert_dhidden(A, L - 1) == NULL, "frozen, no hook: backward computes nothing");

    /* Frozen mode, a pass-through hook (c = 0) at layer 0's attention site: everything above it
     * is visited and equals the full gradients; nothing below. */
    testhook th;
    th_init(&th, L, H, M, 0.0f);
    th.on[0][BERT_SITE_ATTN] = 1;
    bert_hooks hk = th_hooks(&th);
    out = bert_forward(&m, A, &x.b, &hk, 1, &rng);
    check_hidden(A, &x, L, "hidden", HIDDEN_TOL, "pass-through hook");
    bert_backward(&m, A, R, &hk, NULL);
    check_dhidden(A, &x, 0, L, "frozen, hook at layer 0 attention");

    /* Only the last layer's output site hooked: one site's backward and nothing else. */
    memset(th.on, 0, sizeof th.on);
    th.on[L - 1][BERT_SITE_OUT] = 1;
    bert_forward(&m, A, &x.b, &hk, 1, &rng);
    th.calls_bwd = 0;
    bert_backward(&m, A, R, &hk, NULL);
    ok(th.calls_bwd == 1 && bert_dhidden(A, L - 2) == NULL && bert_dhidden(A, L - 1) != NULL,
       "frozen, hook at the last output site: backward stops there");
    ok(tap_relerr(th.dout[L - 1][1], R, n) <= 1e-7, "the last site's hook receives dout");
    th_free(&th);
    free(R), free(loss);
    af_arena_free(&a);
    close_expected(&x);
    bert_free(&m), bert_free(&gm);
}

/* The test hook out = LN(h + r + 0.5 h²) at (layer 0, output) and (layer 1, attention). */
static void test_hooked(void) {
    bert m;
    expected x;
    if (load(&m, fixture("encoder/f32"))) return;
    if (open_expected(&x, fixture("encoder/f32/hooked.safetensors"))) return;
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    int L = m.cfg.layers, M = x.b.B * x.b.S, H = m.cfg.hidden;
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, x.b.B, x.b.S, 1));
    bert_acts *A = bert_acts_new(&a, &m.cfg, x.b.B, x.b.S, 1);
    testhook th;
    th_init(&th, L, H, M, 0.5f);
    th.on[0][BERT_SITE_OUT] = th.on[1][BERT_SITE_ATTN] = 1;
    bert_hooks hk = th_hooks(&th);
    float *R = get(&x.f, "loss_weight", NULL);
    af_rng rng;
    af_rng_seed(&rng, 1);
    const float *out = bert_forward(&m, A, &x.b, &hk, 1, &rng);
    if (!ok(out && R, "hooked forward")) return;
    ok(th.calls_fwd == 2, "the hook ran at its two sites (%d calls)", th.calls_fwd);
    check_hidden(A, &x, L, "hidden", HIDDEN_TOL, "hooked");
    bert_backward(&m, A, R, &hk, NULL);
    check_dhidden(A, &x, 0, L, "hooked, frozen");
    static const int sites[2][2] = {{0, 1}, {1, 0}};
    for (int i = 0; i < 2; i++) {
        int l = sites[i][0], s = sites[i][1];
        static const char *what[] = {"dout", "dh", "dr"};
        float *got[] = {th.dout[l][s], th.dh[l][s], th.dr[l][s]};
        for (int k = 0; k < 3; k++) {
            char name[64];
            size_t n;
            snprintf(name, sizeof name, "site.%d.%d.%s", l, s, what[k]);
            float *want = get(&x.f, name, &n);
            if (!want) continue;
            double r = tap_relerr(got[k], want, n);
            ok(r <= GRAD_TOL, "hook at layer %d site %d: %s relative error %.2g", l, s, what[k], r);
            free(want);
        }
    }
    th_free(&th);
    free(R);
    af_arena_free(&a);
    close_expected(&x);
    bert_free(&m);
}

/* RoBERTa and DistilBERT (scripts/gen-arch-fixtures.py): the same loss, d loss / d hidden and
 * weight gradients. */
static void test_backward_arch(const char *dir, const char *what) {
    bert m, gm;
    expected x;
    char gdir[256], exp[256];
    snprintf(gdir, sizeof gdir, "%s/grad", dir);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    if (load(&m, fixture(dir)) || load(&gm, fixture(gdir))) return;
    if (open_expected(&x, fixture(exp))) return;
    WHAT = what;
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    int L = m.cfg.layers, M = x.b.B * x.b.S, H = m.cfg.hidden;
    af_arena a;
    af_arena_init(&a, bert_acts_bytes(&m.cfg, x.b.B, x.b.S, 1));
    bert_acts *A = bert_acts_new(&a, &m.cfg, x.b.B, x.b.S, 1);
    af_rng rng;
    af_rng_seed(&rng, 1);
    size_t n;
    float *R = get(&x.f, "loss_weight", &n), *loss = get(&x.f, "loss", NULL);
    const float *out = bert_forward(&m, A, &x.b, NULL, 1, &rng);
    if (ok(out && R && loss && n == (size_t)M * H, "%s: train-mode forward", what)) {
        double lv = loss_of(out, R, n);
        ok(fabs(lv - loss[0]) <= 1e-4 * fabs(loss[0]), "%s: loss %.6f, PyTorch %.6f", what, lv,
           loss[0]);
        bert_grads g;
        bert_grads_init(&g, &m.cfg);
        bert_backward(&m, A, R, NULL, &g);
        check_dhidden(A, &x, -1, L, what);
        compare_grads(&g.g, &gm.w, &m.cfg);
        bert_grads_free(&g);
    }
    free(R), free(loss);
    af_arena_free(&a);
    close_expected(&x);
    bert_free(&m), bert_free(&gm);
}

/* AdapterDrop (bert_forward_begin/end): layer 1's input computed for each sequence alone, at
 * its own length (as the layer cache keeps it), then given to a forward of the padded batch
 * from layer 1 on: PyTorch's hidden states at every real token; and the forward and backward
 * from those states equal the ones from the embeddings (dropout 0, a hook at layer 1). */
static void test_cached_forward(void) {
    bert m;
    expected x;
    if (load(&m, fixture("encoder/f32"))) return;
    if (open_expected(&x, fixture("encoder/f32/expected.safetensors"))) return;
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0;
    int L = m.cfg.layers, B = x.b.B, S = x.b.S, M = B * S, H = m.cfg.hidden, K = 1;
    size_t n;
    float *want = get(&x.f, "hidden.2", &n), *R = get(&x.f, "loss_weight", NULL);
    if (!want || !R) return;
    /* the loss reads real tokens only: padding rows, which the cache leaves at 0, then carry
     * no gradient into them in either forward */
    for (int i = 0; i < M; i++)
        if (!x.mask[i]) memset(R + (size_t)i * H, 0, H * sizeof(float));
    af_arena a;
    size_t bytes = bert_acts_bytes_frozen(&m.cfg, B, S, 2 * K, 0, 0, BERT_PLAN_ATTN_HOOKS);
    af_arena_init(&a, bytes);
    bert_acts *A = bert_acts_new_frozen(&a, &m.cfg, B, S, 2 * K, 0, 0, BERT_PLAN_ATTN_HOOKS);
    testhook th;
    th_init(&th, L, H, M, 0.0f);
    th.on[K][BERT_SITE_ATTN] = 1;
    bert_hooks hk = th_hooks(&th);
    af_rng rng;
    af_rng_seed(&rng, 1);

    /* every sequence alone, its own length: layer K's input, as the cache keeps it */
    float *kept = calloc((size_t)M * H, sizeof(float));
    for (int b = 0; b < B; b++) {
        int len = 0;
        while (len < S && x.mask[b * S + len]) len++;
        bert_batch one = {1, len, x.ids + b * S, x.types + b * S, x.mask + b * S};
        const float *in = bert_forward_begin(&m, A, &one, K, 1);
        if (in) memcpy(kept + (size_t)b * S * H, in, (size_t)len * H * sizeof(float));
        ok(in != NULL, "sequence %d alone (%d tokens): layer %d's input", b, len, K);
    }
    /* the padded batch from the kept states */
    float *in = bert_forward_begin(&m, A, &x.b, K, 0);
    if (!ok(in != NULL, "begin without the lower layers")) return;
    memcpy(in, kept, (size_t)M * H * sizeof(float));
    const float *out = bert_forward_end(&m, A, &hk, 1, &rng);
    if (!ok(out != NULL, "end: layers %d..%d", K, L - 1)) return;
    double d = 0;
    for (int i = 0; i < M; i++)
        if (x.mask[i]) d = fmax(d, tap_maxdiff(out + (size_t)i * H, want + (size_t)i * H, H));
    ok(d <= HIDDEN_TOL,
       "from the kept states: PyTorch's last hidden states at real tokens, max "
       "abs error %.2g",
       d);
    float *y1 = malloc((size_t)M * H * sizeof(float)), *g1 = malloc((size_t)M * H * sizeof(float));
    memcpy(y1, out, (size_t)M * H * sizeof(float));
    th.calls_bwd = 0;
    bert_backward(&m, A, R, &hk, NULL);
    ok(th.calls_bwd == 1 && bert_dhidden(A, K - 1) == NULL,
       "the backward stops at layer %d's hooked site", K);
    memcpy(g1, th.dh[K][BERT_SITE_ATTN], (size_t)M * H * sizeof(float));

    /* the same batch from the embeddings */
    out = bert_forward(&m, A, &x.b, &hk, 1, &rng);
    bert_backward(&m, A, R, &hk, NULL);
    double dy = 0, dg = 0;
    for (int i = 0; out && i < M; i++)
        if (x.mask[i]) {
            dy = fmax(dy, tap_maxdiff(out + (size_t)i * H, y1 + (size_t)i * H, H));
            dg = fmax(dg,
                      tap_maxdiff(th.dh[K][BERT_SITE_ATTN] + (size_t)i * H, g1 + (size_t)i * H, H));
        }
    /* to rounding: the sequences' lower layers ran at other lengths */
    ok(out && dy <= 1e-5, "cached vs full forward: max abs difference %.2g at real tokens", dy);
    ok(dg <= 1e-5, "cached vs full backward: the hook's dh at layer %d, max abs difference %.2g", K,
       dg);

    /* what the two calls refuse */
    ok(bert_forward_begin(&m, A, &x.b, 0, 1) == NULL &&
           bert_forward_begin(&m, A, &x.b, L, 1) == NULL,
       "begin refuses K = 0 and K = layers");
    th.on[0][BERT_SITE_OUT] = 1;
    ok(bert_forward_begin(&m, A, &x.b, K, 1) && !bert_forward_end(&m, A, &hk, 1, &rng),
       "end refuses a hook below K");
    ok(!bert_forward_end(&m, A, NULL, 0, NULL), "end without a begin: NULL");
    th_free(&th);
    free(kept), free(y1), free(g1), free(want), free(R);
    af_arena_free(&a);
    close_expected(&x);
    bert_free(&m);
}

int main(void) {
    test_forward("encoder/f32", "f32 (bert. prefix, gamma/beta, gelu)", 0);
    test_forward("encoder/f16", "f16 (no prefix, weight/bias, gelu_new, eps 1e-5)", 1);
    test_forward("encoder/bf16", "bf16 (relu)", 0);
    test_backward();
    test_hooked();
    test_cached_forward();
    /* the other architectures (RoBERTa's fixture holds its pad id mid-sequence) */
    test_forward("arch/roberta/f32", "roberta f32 (roberta. prefix, pad id mid-sequence)", 0);
    test_forward("arch/roberta/f16", "roberta f16 (no prefix, gelu_new)", 0);
    test_forward("arch/distilbert/f32", "distilbert f32 (distilbert. prefix)", 0);
    test_forward("arch/distilbert/bf16", "distilbert bf16 (no prefix, relu)", 0);
    test_backward_arch("arch/roberta/f32", "roberta");
    test_backward_arch("arch/distilbert/f32", "distilbert");
    return done_testing();
}
