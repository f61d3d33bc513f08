/* fusion_tree.h: hierarchical fusion at one site, a fusion whose inputs include other, frozen
 * fusions (af-fuse --fusion-input).
 *
 * The site computes the outputs ups[M,A,H] of its A adapters (the leaves) as for a flat fusion.
 * Each inner node is a fusion read from a file, over adapters or earlier nodes; its input j is
 * adapter i (in[j] = i >= 0) or node k's fused output (in[j] = -1 - k, k before it). Every node
 * takes the site's query input x, as the fusion it was trained as did, and its output is what it
 * computed there: o_k = fusion_k(x, [its inputs]). The root, the site's own fusion, combines its
 * inputs the same way, and its output is the site's fused value. Inner nodes are frozen and run
 * as in inference (no dropout; their own recorded temperature); the gradient still flows through
 * them to x and to the adapters.
 *
 * Forward gathers each node's inputs into (M, n, H), the layout fusion_forward reads, and keeps
 * them; backward runs the nodes from the root down, scattering each node's input gradients to
 * the adapters (dups) or to the node below (its dout). */
#ifndef AF_FUSION_TREE_H
#define AF_FUSION_TREE_H

#include "fusion.h"

#define FUSION_TREE_NODE(k) (-1 - (k)) /* an input that is node k's output */

typedef struct {
    const fusion *f; /* this node's fusion at the site (f->cfg.N inputs) */
    float T;         /* its temperature */
    const int *in;   /* [f->cfg.N] */
} fusion_tree_node;

typedef struct {
    int nnodes;                   /* inner nodes, each after the nodes it reads */
    const fusion_tree_node *node; /* [nnodes] */
    const int *root_in;           /* [root's cfg.N] the site fusion's inputs */
    int nleaves;                  /* adapters: ups holds this many per token */
} fusion_tree;

/* What the tree keeps for its backward, beyond the root's own fusion_cache. */
typedef struct {
    int M;
    float *ins;       /* per node, then the root: (M, n, H) the gathered inputs, consecutive */
    float *outs;      /* (nnodes, M, H) the inner nodes' outputs */
    float *douts;     /* (nnodes, M, H) backward scratch */
    float *dins;      /* (M, max n, H) backward scratch */
    fusion_cache *fc; /* [nnodes] the inner nodes' caches (carved from mem too) */
} fusion_tree_cache;

/* Checks the wiring: every input an adapter below nleaves or an earlier node, every adapter and
 * node read exactly once, sizes agreeing with root. */
int fusion_tree_check(const fusion_tree *t, const fusion_config *root, af_err *e);

/* Floats of what is kept (mem) and of the backward scratch, for M tokens, when the scratch is
 * given apart (shared). The inner nodes' own fusion scratch is not counted: they use the root's,
 * one node at a time, which must then be fusion_tree_fusion_scratch_floats at least. Without a
 * shared scratch, mem takes fusion_tree_cache_floats_own. */
size_t fusion_tree_cache_floats(const fusion_tree *t, const fusion_config *root, int M);
size_t fusion_tree_scratch_floats(const fusion_tree *t, const fusion_config *root, int M);
size_t fusion_tree_fusion_scratch_floats(const fusion_tree *t, int M);
size_t fusion_tree_cache_floats_own(const fusion_tree *t, const fusion_config *root, int M);
/* mem: fusion_tree_cache_floats (8-byte aligned); scratch: fusion_tree_scratch_floats, or NULL:
 * then mem holds that too after the rest, and each inner node keeps its fusion scratch in mem.
 * fscratch (with scratch): the fusion scratch the root's cache uses, which the inner nodes
 * share. */
void fusion_tree_cache_carve(fusion_tree_cache *c, float *mem, float *scratch, float *fscratch,
                             const fusion_tree *t, const fusion_config *root, int M);

/* o[M,H] from x[M,H] and the adapters' ups[M,nleaves,H], through the inner nodes and then the
 * root (f, rc: as fusion_forward, with T and rng for the root alone). */
void fusion_tree_forward(float *o, fusion_tree_cache *c, fusion_cache *rc, const float *x,
                         const float *ups, const fusion_tree *t, const fusion *f, int M, float T,
                         af_rng *rng);
/* Accumulates dx (NULL: not needed), dups[M,nleaves,H] and the root's gradients into g (NULL:
 * frozen) from dout, for the last forward. */
void fusion_tree_backward(float *dx, float *dups, fusion *g, fusion_tree_cache *c, fusion_cache *rc,
                          const float *dout, const float *x, const float *ups, const fusion_tree *t,
                          const fusion *f, int M);

/* Node k's weights over its inputs in the last forward: (M, n). */
const float *fusion_tree_weights(const fusion_tree_cache *c, int k);

#endif
