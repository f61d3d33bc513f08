/* fusion_tree.c: hierarchical fusion at a site: the forward is the composition of its fusions
 * (each run alone on its inputs), the backward matches finite differences for x, every adapter
 * output and every root parameter through two and three levels (with the root's dropout and
 * temperature), inner nodes get no gradient, the wiring is checked, and a site carved with
 * shared scratch (as the model carves it) computes the same bits as one carved alone. */
#include "fusion_tree.h"

#include <stdlib.h>

#include "kgrad.h"
#include "ops.h"
#include "site.h"
#include "tap.h"

enum { H = 16, M = 7, NL = 4 };

typedef struct {
    const fusion_tree *t;
    fusion *root;
    fusion_tree_cache tc;
    fusion_cache rc;
    const float *x, *ups, *G;
    float *o, T;
    int train;
} fixture;

static double loss(void *ctx) {
    fixture *fx = ctx;
    af_rng r;
    af_rng_seed(&r, 99); /* the same masks on every call */
    fusion_tree_forward(fx->o, &fx->tc, &fx->rc, fx->x, fx->ups, fx->t, fx->root, M, fx->T,
                        fx->train ? &r : NULL);
    return kg_dot(fx->G, fx->o, M * H);
}

/* A fusion of n inputs with random parameters away from the init. */
static float *make(fusion *f, int method, int n, af_rng *rng) {
    fusion_config cfg = {.method = method, .H = H, .N = n, .heads = 2, .dropout = 0.25f};
    size_t np = fusion_nparams(&cfg);
    float *buf = malloc(sizeof(float) * (np ? np : 1));
    fusion_carve(f, &cfg, buf);
    kg_fill(buf, np, rng, method == FUSION_WEIGHTED ? 1.0f : 0.2f);
    if (f->value_w)
        for (int i = 0; i < H; i++) f->value_w[i * H + i] += 1;
    return buf;
}

/* in[] of one fusion gathered from ups (adapters) and outs (nodes), as the tree gathers them. */
static void gather(float *dst, const int *in, int n, const float *ups, const float *outs) {
    for (int m = 0; m < M; m++)
        for (int j = 0; j < n; j++)
            memcpy(dst + ((size_t)m * n + j) * H,
                   in[j] >= 0 ? ups + ((size_t)m * NL + in[j]) * H
                              : outs + ((size_t)(-1 - in[j]) * M + m) * H,
                   H * sizeof(float));
}

static void check(const char *name, fusion_tree_node *nodes, int nnodes, const int *root_in,
                  int nroot, int root_method, float T, int train, af_rng *rng) {
    char what[200];
    float *bufs[8];
    fusion f[8];
    for (int k = 0; k < nnodes; k++) {
        bufs[k] = make(&f[k], nodes[k].f->cfg.method, nodes[k].f->cfg.N, rng);
        nodes[k].f = &f[k];
    }
    fusion root, g;
    float *rbuf = make(&root, root_method, nroot, rng);
    size_t np = fusion_nparams(&root.cfg);
    float *gbuf = calloc(np ? np : 1, sizeof(float));
    fusion_carve(&g, &root.cfg, gbuf);
    fusion_tree t = {nnodes, nodes, root_in, NL};
    af_err e;
    ok(fusion_tree_check(&t, &root.cfg, &e) == 0, "%s: the wiring checks", name);

    float x[M * H], ups[M * NL * H], G[M * H], o[M * H];
    kg_fill(x, M * H, rng, 1.0f);
    kg_fill(ups, M * NL * H, rng, 1.0f);
    kg_fill(G, M * H, rng, 1.0f);
    float *rmem = malloc(sizeof(float) * fusion_cache_floats(&root.cfg, M));
    float *tmem = malloc(sizeof(float) * fusion_tree_cache_floats_own(&t, &root.cfg, M));
    fixture fx = {&t, &root, {0}, {0}, x, ups, G, o, T, train};
    fusion_cache_carve(&fx.rc, rmem, &root.cfg, M);
    fusion_tree_cache_carve(&fx.tc, tmem, NULL, NULL, &t, &root.cfg, M);
    loss(&fx);

    /* the composition, every fusion run alone (inner: no dropout, their own T) */
    {
        float outs[8 * M * H], ins[M * 8 * H], want[M * H];
        for (int k = 0; k < nnodes; k++) {
            fusion_cache c;
            float *mem = malloc(sizeof(float) * fusion_cache_floats(&f[k].cfg, M));
            fusion_cache_carve(&c, mem, &f[k].cfg, M);
            gather(ins, nodes[k].in, f[k].cfg.N, ups, outs);
            fusion_forward(outs + (size_t)k * M * H, &c, x, ins, &f[k], M, nodes[k].T, NULL);
            free(mem);
        }
        fusion_cache c;
        float *mem = malloc(sizeof(float) * fusion_cache_floats(&root.cfg, M));
        fusion_cache_carve(&c, mem, &root.cfg, M);
        gather(ins, root_in, nroot, ups, outs);
        af_rng r;
        af_rng_seed(&r, 99);
        fusion_forward(want, &c, x, ins, &root, M, T, train ? &r : NULL);
        free(mem);
        ok(!memcmp(want, o, sizeof o) && (!train || fx.rc.dropped),
           "%s: forward is the composition of its fusions, bit for bit", name);
    }

    float dx[M * H] = {0}, dups[M * NL * H] = {0};
    fusion_tree_backward(dx, dups, &g, &fx.tc, &fx.rc, G, x, ups, &t, &root, M);
    snprintf(what, sizeof what, "%s: dx", name);
    kg_check(what, loss, &fx, x, dx, M * H, 1e-3f, 1e-2);
    snprintf(what, sizeof what, "%s: dups (every adapter, through every level)", name);
    kg_check(what, loss, &fx, ups, dups, M * NL * H, 1e-3f, 1e-2);
    param_desc p[fusion_param_count(&root.cfg)];
    int n = fusion_params(p, &root.cfg);
    for (int i = 0; i < n; i++) {
        if (!strcmp(p[i].name, "key.bias") && !fx.rc.dropped) continue; /* zero: unit/fusion */
        snprintf(what, sizeof what, "%s: root %s", name, p[i].name);
        kg_check(what, loss, &fx, rbuf + p[i].offset, gbuf + p[i].offset, p[i].numel, 1e-3f, 1e-2);
    }
    /* the inner nodes are frozen: their weights move the loss, but the tree gives them nothing
     * (they have no gradient buffer at all); frozen root: the same dx and dups */
    float dx2[M * H] = {0}, dups2[M * NL * H] = {0};
    fusion_tree_backward(dx2, dups2, NULL, &fx.tc, &fx.rc, G, x, ups, &t, &root, M);
    ok(tap_maxdiff(dx, dx2, M * H) < 1e-6 && tap_maxdiff(dups, dups2, M * NL * H) < 1e-6,
       "%s: frozen root gives the same dx, dups", name);
    for (int k = 0; k < nnodes; k++) free(bufs[k]);
    free(rbuf), free(gbuf), free(rmem), free(tmem);
}

typedef struct {
    site *s;
    site_cache *c;
    const float *h, *r, *lw, *lb, *G;
    float *o;
} site_fx;

static double site_loss(void *ctx) {
    site_fx *f = ctx;
    site_forward(f->o, f->c, f->s, f->h, f->r, f->lw, f->lb, 1e-5f, M, 2.0f, NULL);
    return kg_dot(f->G, f->o, M * H);
}

/* A Pfeiffer site over NL adapters with the tree: dh, dr, the adapters' and the root's
 * gradients by finite differences through the site's LayerNorms; then carved alone and carved
 * shared as the model does (the backward recomputes from h + r): the same output and
 * gradients, bit for bit. */
static void site_shared(af_rng *rng) {
    int r[NL] = {4, 4, 4, 4}, act[NL] = {AF_ACT_RELU, AF_ACT_RELU, AF_ACT_RELU, AF_ACT_RELU};
    adapter a[NL], ag[NL];
    size_t an = NL * adapter_nparams(H, 4);
    float *abuf = malloc(sizeof(float) * an), *ag1 = calloc(an, sizeof(float)),
          *ag2 = calloc(an, sizeof(float));
    adapter_stack_carve(a, NL, abuf, H, r, act);
    kg_fill(abuf, an, rng, 0.3f);
    fusion f0, f1, root, g1, g2;
    float *b0 = make(&f0, FUSION_ATTENTION, 2, rng), *b1 = make(&f1, FUSION_GATING, 2, rng);
    float *rb = make(&root, FUSION_ATTENTION, 2, rng);
    size_t np = fusion_nparams(&root.cfg);
    float *fg1 = calloc(np, sizeof(float)), *fg2 = calloc(np, sizeof(float));
    fusion_carve(&g1, &root.cfg, fg1);
    fusion_carve(&g2, &root.cfg, fg2);
    static const int in0[] = {2, 0}, in1[] = {-1, 3}, rin[] = {1, -2};
    fusion_tree_node nodes[] = {{&f0, 1.5f, in0}, {&f1, 1.0f, in1}};
    fusion_tree t = {2, nodes, rin, NL};
    float h[M * H], rr[M * H], lw[H], lb[H], G[M * H], o1[M * H], o2[M * H];
    kg_fill(h, M * H, rng, 1), kg_fill(rr, M * H, rng, 1), kg_fill(G, M * H, rng, 1);
    for (int i = 0; i < H; i++) lw[i] = 1 + 0.1f * af_rng_normal(rng), lb[i] = 0.1f;
    float dh1[M * H], dr1[M * H], dh2[M * H], dr2[M * H];
    site s1 = {SITE_PFEIFFER, NL, a, NULL, &root, &g1, &t};
    adapter_stack_carve(ag, NL, ag1, H, r, act);
    s1.adapter_grads = ag;
    af_err e;
    ok(site_check(&s1, &e) == 0, "site with a tree: site_check passes");
    site_cache c1, c2;
    float *m1 = calloc(site_cache_floats(&s1, M) + 2, sizeof(float));
    site_cache_carve(&c1, m1, &s1, M);
    {
        site_fx fx = {&s1, &c1, h, rr, lw, lb, G, o1};
        float gh[M * H] = {0}, gr[M * H] = {0};
        site_loss(&fx);
        site_backward(gh, gr, &c1, &s1, G, h, rr, lw, M);
        kg_check("site with a tree: dh", site_loss, &fx, h, gh, M * H, 1e-3f, 1e-2);
        kg_check("site with a tree: dr", site_loss, &fx, rr, gr, M * H, 1e-3f, 1e-2);
        kg_check("site with a tree: every adapter", site_loss, &fx, abuf, ag1, an, 1e-3f, 1e-2);
        param_desc p[fusion_param_count(&root.cfg)];
        int n = fusion_params(p, &root.cfg);
        for (int i = 0; i < n; i++) {
            if (!strcmp(p[i].name, "key.bias")) continue; /* zero without dropout */
            char what[96];
            snprintf(what, sizeof what, "site with a tree: root %s", p[i].name);
            kg_check(what, site_loss, &fx, rb + p[i].offset, fg1 + p[i].offset, p[i].numel, 1e-3f,
                     1e-2);
        }
        memset(ag1, 0, an * sizeof(float)), memset(fg1, 0, np * sizeof(float));
    }
    af_rng d1, d2;
    af_rng_seed(&d1, 5), af_rng_seed(&d2, 5);
    site_forward(o1, &c1, &s1, h, rr, lw, lb, 1e-5f, M, 2.0f, &d1);
    site_backward(dh1, dr1, &c1, &s1, G, h, rr, lw, M);

    site s2 = s1;
    adapter ag2v[NL];
    adapter_stack_carve(ag2v, NL, ag2, H, r, act);
    s2.adapter_grads = ag2v, s2.fusion_grad = &g2;
    size_t k = site_scratch_floats(&s2, M);
    float *m2 = calloc(site_cache_floats_shared(&s2, M) + 2, sizeof(float)),
          *sc = calloc(k, sizeof(float));
    site_cache_carve_shared(&c2, m2, sc, &s2, M);
    site_forward(o2, &c2, &s2, h, rr, lw, lb, 1e-5f, M, 2.0f, &d2);
    /* another site using the shared scratch between forward and backward */
    for (size_t i = 0; i < k; i++) sc[i] = 1e30f;
    site_backward(dh2, dr2, &c2, &s2, G, h, rr, lw, M);
    ok(!memcmp(o1, o2, sizeof o1) && !memcmp(dh1, dh2, sizeof dh1) &&
           !memcmp(dr1, dr2, sizeof dr1) && !memcmp(ag1, ag2, an * sizeof(float)) &&
           !memcmp(fg1, fg2, np * sizeof(float)),
       "site with a tree: shared scratch gives the same output and gradients, bit for bit");
    /* node 0 is attention: its weights over (C, A) are a softmax */
    const float *w = fusion_tree_weights(&c2.tc, 0);
    double dev = 0;
    for (int m = 0; m < M; m++) dev = fmax(dev, fabs(w[2 * m] + w[2 * m + 1] - 1));
    ok(w == c2.tc.fc[0].p && dev < 1e-6, "fusion_tree_weights: node 0's softmax (dev %.1e)", dev);
    free(abuf), free(ag1), free(ag2), free(b0), free(b1), free(rb), free(fg1), free(fg2);
    free(m1), free(m2), free(sc);
}

int main(void) {
    af_rng rng;
    af_rng_seed(&rng, 21);
    af_err e;
    /* the nodes' shapes; check() gives them parameters */
    fusion fa = {.cfg = {.method = FUSION_ATTENTION, .H = H, .N = 2}};
    {
        /* (A,B) fused, then with C: the tree; D is the fourth leaf of the fixture */
        static const int in[] = {0, 1}, rin[] = {-1, 2, 3};
        fusion_tree_node nodes[] = {{&fa, 1.0f, in}};
        check("attention over (attention over A,B), C, D", nodes, 1, rin, 3, FUSION_ATTENTION, 1.0f,
              0, &rng);
        nodes[0].f = &fa;
        check("attention T=2 with dropout over (attention A,B), C, D", nodes, 1, rin, 3,
              FUSION_ATTENTION, 2.0f, 1, &rng);
    }
    {
        fusion fw2 = {.cfg = {.method = FUSION_WEIGHTED, .H = H, .N = 2}},
               fg3 = {.cfg = {.method = FUSION_GATING, .H = H, .N = 2}};
        /* three levels: ((B, D) weighted, A) gating, then with C by multihead */
        static const int in0[] = {1, 3}, in1[] = {-1, 0}, rin[] = {2, -2};
        fusion_tree_node nodes[] = {{&fw2, 1.0f, in0}, {&fg3, 1.0f, in1}};
        check("multihead over C, (gating over (weighted over B, D), A)", nodes, 2, rin, 2,
              FUSION_MULTIHEAD, 1.0f, 0, &rng);
        nodes[0].f = &fw2, nodes[1].f = &fg3;
        check("static over C, (gating over (weighted over B, D), A)", nodes, 2, rin, 2,
              FUSION_STATIC, 1.0f, 0, &rng);
    }
    {
        fusion root = {.cfg = {.method = FUSION_WEIGHTED, .H = H, .N = 2}};
        static const int in[] = {0, 1}, twice[] = {-1, 0}, later[] = {-1, 2}, self[] = {0, -1};
        fusion_tree_node nodes[] = {{&fa, 1.0f, in}};
        fusion_tree t = {1, nodes, twice, 3};
        ok(fusion_tree_check(&t, &root.cfg, &e) == -1 &&
               strstr(e.msg, "adapter 0 is an input twice"),
           "wiring: an adapter read twice is refused (%s)", e.msg);
        t.root_in = later, t.nleaves = 4;
        ok(fusion_tree_check(&t, &root.cfg, &e) == -1 && strstr(e.msg, "adapter 3 is no node"),
           "wiring: an adapter nobody reads is refused (%s)", e.msg);
        t.nleaves = 3;
        nodes[0].in = self;
        ok(fusion_tree_check(&t, &root.cfg, &e) == -1 && strstr(e.msg, "node below 0"),
           "wiring: a node reading itself (a cycle) is refused (%s)", e.msg);
    }
    site_shared(&rng);
    return done_testing();
}
