/* fusion_tree.c: hierarchical fusion at one site; see fusion_tree.h. */
#include "fusion_tree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static const int *inputs(const fusion_tree *t, int k) {
    return k < t->nnodes ? t->node[k].in : t->root_in;
}

static int ninputs(const fusion_tree *t, const fusion_config *root, int k) {
    return k < t->nnodes ? t->node[k].f->cfg.N : root->N;
}

int fusion_tree_check(const fusion_tree *t, const fusion_config *root, af_err *e) {
    int nl = t->nleaves, nn = t->nnodes, ok = 1;
    int *used = af_calloc((size_t)nl + nn + 1, sizeof(int));
    for (int k = 0; k <= nn && ok; k++) {
        const int *in = inputs(t, k);
        int n = ninputs(t, root, k);
        if (k < nn && t->node[k].f->cfg.H != root->H) {
            af_errf(e, "fusion tree: node %d: hidden size %d expected, %d found", k, root->H,
                    t->node[k].f->cfg.H);
            ok = 0;
        }
        for (int j = 0; j < n && ok; j++) {
            int v = in[j], node = -1 - v;
            if (v >= nl || (v < 0 && node >= k)) {
                af_errf(e,
                        "fusion tree: node %d input %d: an adapter below %d or a node below %d "
                        "expected, %d found",
                        k, j, nl, k, v);
                ok = 0;
            } else if (used[v >= 0 ? v : nl + node]++) {
                af_errf(e, "fusion tree: %s %d is an input twice", v >= 0 ? "adapter" : "node",
                        v >= 0 ? v : node);
                ok = 0;
            }
        }
    }
    for (int i = 0; i < nl + nn && ok; i++)
        if (!used[i]) {
            af_errf(e, "fusion tree: %s %d is no node's input", i < nl ? "adapter" : "node",
                    i < nl ? i : i - nl);
            ok = 0;
        }
    free(used);
    return ok ? 0 : -1;
}

/* One walk sizes (mem NULL) and carves. Kept: the inputs of every node, the inner nodes'
 * outputs and caches; scratch: the backward's douts and dins. */
static void layout(fusion_tree_cache *c, float *mem, float *scratch, float *fscratch, int shared,
                   const fusion_tree *t, const fusion_config *root, int M, size_t *kept,
                   size_t *nscratch) {
    size_t H = root->H, MH = (size_t)M * H, k = 0;
    int maxn = 0;
    fusion_tree_cache tmp;
    if (!c) c = &tmp;
    c->M = M;
    /* the inner nodes' fusion_cache structs come first, aligned for their pointers */
    size_t n = (t->nnodes * sizeof(fusion_cache) + 2 * sizeof(float) - 1) / sizeof(float) + 2;
    fusion_cache *fc = mem ? (fusion_cache *)(((uintptr_t)mem + 7) & ~(uintptr_t)7) : NULL;
    c->ins = mem ? mem + n : NULL;
    for (int q = 0; q <= t->nnodes; q++) {
        int nq = ninputs(t, root, q);
        n += MH * nq;
        maxn = nq > maxn ? nq : maxn;
    }
    c->outs = mem ? mem + n : NULL;
    n += MH * t->nnodes;
    c->fc = fc;
    for (int q = 0; q < t->nnodes; q++) {
        const fusion_config *cfg = &t->node[q].f->cfg;
        if (shared) {
            if (mem) fusion_cache_carve_shared(&fc[q], mem + n, fscratch, cfg, M);
            n += fusion_cache_floats_shared(cfg, M);
        } else {
            if (mem) fusion_cache_carve(&fc[q], mem + n, cfg, M);
            n += fusion_cache_floats(cfg, M);
        }
    }
    float *s = shared ? scratch : mem ? mem + n : NULL;
    c->douts = s ? s : NULL;
    k += MH * t->nnodes;
    c->dins = s ? s + k : NULL;
    k += MH * maxn;
    *kept = shared ? n : n + k;
    *nscratch = k;
}

size_t fusion_tree_cache_floats(const fusion_tree *t, const fusion_config *root, int M) {
    size_t n, k;
    layout(NULL, NULL, NULL, NULL, 1, t, root, M, &n, &k);
    return n;
}

size_t fusion_tree_scratch_floats(const fusion_tree *t, const fusion_config *root, int M) {
    size_t n, k;
    layout(NULL, NULL, NULL, NULL, 1, t, root, M, &n, &k);
    return k;
}

size_t fusion_tree_fusion_scratch_floats(const fusion_tree *t, int M) {
    size_t k = 0;
    for (int q = 0; q < t->nnodes; q++) {
        size_t kq = fusion_scratch_floats(&t->node[q].f->cfg, M);
        k = kq > k ? kq : k;
    }
    return k;
}

void fusion_tree_cache_carve(fusion_tree_cache *c, float *mem, float *scratch, float *fscratch,
                             const fusion_tree *t, const fusion_config *root, int M) {
    size_t n, k;
    layout(c, mem, scratch, fscratch, scratch != NULL, t, root, M, &n, &k);
}

/* Node q's inputs: the (M, n, H) block after the earlier nodes'. */
static float *node_ins(const fusion_tree_cache *c, const fusion_tree *t, const fusion_config *root,
                       int q, int M) {
    size_t off = 0;
    for (int p = 0; p < q; p++) off += (size_t)ninputs(t, root, p);
    return c->ins + off * M * root->H;
}

static void gather(float *ins, const fusion_tree_cache *c, const float *ups, const int *in, int n,
                   int nleaves, int M, int H) {
    for (int m = 0; m < M; m++)
        for (int j = 0; j < n; j++) {
            const float *src = in[j] >= 0 ? ups + ((size_t)m * nleaves + in[j]) * H
                                          : c->outs + ((size_t)(-1 - in[j]) * M + m) * H;
            memcpy(ins + ((size_t)m * n + j) * H, src, H * sizeof(float));
        }
}

/* The gradients of a node's inputs to the adapters (dups) or to the node below (douts). */
static void scatter(float *dups, const fusion_tree_cache *c, const int *in, int n, int nleaves,
                    int M, int H) {
    for (int m = 0; m < M; m++)
        for (int j = 0; j < n; j++) {
            float *dst = in[j] >= 0 ? dups + ((size_t)m * nleaves + in[j]) * H
                                    : c->douts + ((size_t)(-1 - in[j]) * M + m) * H;
            vec_add(dst, c->dins + ((size_t)m * n + j) * H, H);
        }
}

void fusion_tree_forward(float *o, fusion_tree_cache *c, fusion_cache *rc, const float *x,
                         const float *ups, const fusion_tree *t, const fusion *f, int M, float T,
                         af_rng *rng) {
    int H = f->cfg.H;
    for (int q = 0; q < t->nnodes; q++) {
        const fusion_tree_node *nd = &t->node[q];
        float *ins = node_ins(c, t, &f->cfg, q, M);
        gather(ins, c, ups, nd->in, nd->f->cfg.N, t->nleaves, M, H);
        fusion_forward(c->outs + (size_t)q * M * H, &c->fc[q], x, ins, nd->f, M, nd->T, NULL);
    }
    float *ins = node_ins(c, t, &f->cfg, t->nnodes, M);
    gather(ins, c, ups, t->root_in, f->cfg.N, t->nleaves, M, H);
    fusion_forward(o, rc, x, ins, f, M, T, rng);
}

void fusion_tree_backward(float *dx, float *dups, fusion *g, fusion_tree_cache *c, fusion_cache *rc,
                          const float *dout, const float *x, const float *ups, const fusion_tree *t,
                          const fusion *f, int M) {
    int H = f->cfg.H, n = f->cfg.N;
    size_t MH = (size_t)M * H;
    memset(c->douts, 0, MH * t->nnodes * sizeof(float));
    memset(c->dins, 0, MH * n * sizeof(float));
    fusion_backward(dx, c->dins, g, rc, dout, x, node_ins(c, t, &f->cfg, t->nnodes, M), f, M);
    scatter(dups, c, t->root_in, n, t->nleaves, M, H);
    /* parents before children: a node's dout is complete once every node above has run */
    for (int q = t->nnodes - 1; q >= 0; q--) {
        const fusion_tree_node *nd = &t->node[q];
        int nq = nd->f->cfg.N;
        memset(c->dins, 0, MH * nq * sizeof(float));
        fusion_backward(dx, c->dins, NULL, &c->fc[q], c->douts + (size_t)q * MH, x,
                        node_ins(c, t, &f->cfg, q, M), nd->f, M);
        scatter(dups, c, nd->in, nq, t->nleaves, M, H);
    }
}

const float *fusion_tree_weights(const fusion_tree_cache *c, int k) {
    return c->fc[k].p;
}

size_t fusion_tree_cache_floats_own(const fusion_tree *t, const fusion_config *root, int M) {
    size_t n, k;
    layout(NULL, NULL, NULL, NULL, 0, t, root, M, &n, &k);
    return n;
}
