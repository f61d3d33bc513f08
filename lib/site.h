/* site.h: what happens at an adapter site, for a bert hook (bert.h) to call.
 *
 * At a site the encoder has h[M,H] (the sublayer output after dense + dropout), r[M,H] (the
 * residual input) and the site's original LayerNorm LN (frozen). Without adapters the site
 * computes LN(h + r). With adapters, as AdapterHub's AdapterLayer (pre_forward, adapter or
 * adapter_fusion, post_forward) does for its two configs:
 *     pfeiffer (original_ln_before, residual_before_ln): x = LN(h + r)
 *     houlsby  (no original_ln_before, residual_before_ln): x = h
 *     one adapter:        out = LN(up(x) + h + r)
 *     N adapters, fused:  out = LN(fusion(x, [up_1(x) .. up_N(x)]) + h + r)
 * The same LN (its weights are the base's, never trained) serves before and after: AdapterHub
 * passes the layer's own LayerNorm to both. The fusion query is x as well (query_before_ln is
 * false in both fusion configs). */
#ifndef AF_SITE_H
#define AF_SITE_H

#include "adapter.h"
#include "af.h"
#include "fusion.h"
#include "fusion_tree.h"

/* SITE_NONE: no adapter at all, a head on the frozen base (the baseline of the paper's tables). */
typedef enum { SITE_PFEIFFER, SITE_HOULSBY, SITE_NONE } site_arch;

/* "pfeiffer", "houlsby", "none" <-> site_arch; -1 if unknown. */
int site_arch_parse(const char *name);
const char *site_arch_name(int arch);

typedef struct {
    int arch;                /* site_arch */
    int N;                   /* adapters at this site (>= 1) */
    const adapter *adapters; /* [N]; for one sgemm over their down projections, carve them with
                                adapter_stack_carve */
    adapter *adapter_grads;  /* [N] gradient views, or NULL: adapters frozen */
    const fusion *fusion;    /* NULL: a single adapter (N == 1) */
    fusion *fusion_grad;     /* NULL: fusion frozen (inference) */
    const fusion_tree *tree; /* NULL: the fusion's inputs are the N adapters in order; else a
                                hierarchical fusion whose leaves they are (fusion_tree.h) */
} site;

/* Checks that the adapters agree on H and that the fusion (if any) was made for N adapters of
 * that size. */
int site_check(const site *s, af_err *e);

/* What forward keeps for backward, for up to M tokens. */
typedef struct {
    int M;
    float *hr;            /* (M, H) h + r */
    float *x;             /* (M, H) pfeiffer: LN(h + r); houlsby: unused, x is h itself */
    float *mean1, *rstd1; /* (M) pfeiffer's first LN */
    float *ups;           /* (M, N, H) adapter outputs (fusion only: one adapter writes into y) */
    float *y;             /* (M, H) input of the final LN */
    float *mean2, *rstd2; /* (M) */
    float *dy, *dx;       /* (M, H) backward scratch */
    float *dups;          /* (M, N, H) backward scratch (fusion) */
    adapter_cache ac;
    fusion_cache fc; /* fusion only: fc.p (M, N) holds the weights over adapters */
    fusion_tree_cache tc; /* a tree only: its inner nodes (their caches: site_tree_caches) */
    int shared;      /* hr, x, ups (or y) live in the shared scratch: the backward recomputes them */
    const float *ln_w, *ln_b; /* the site's LayerNorm in the last forward (for that) */
    float eps;
} site_cache;

size_t site_cache_floats(const site *s, int M);
void site_cache_carve(site_cache *c, float *mem, const site *s, int M);
/* The same with h + r, x, the adapters' outputs (or y) and the backward scratch in a block the
 * caller gives (site_scratch_floats), which sites running one after the other can share: the
 * backward recomputes what it needs of them from h and r, which must then be the forward's. */
size_t site_cache_floats_shared(const site *s, int M);
size_t site_scratch_floats(const site *s, int M);
void site_cache_carve_shared(site_cache *c, float *mem, float *scratch, const site *s, int M);

/* out[M,H] from h, r and the site's LayerNorm (ln_w, ln_b, eps); a Pfeiffer site also takes
 * h = h + r and r = NULL (it reads them only as their sum), in its backward too. T: fusion temperature (1 when
 * not annealing). rng non-NULL means training (fusion dropout; adapters have none). */
void site_forward(float *out, site_cache *c, const site *s, const float *h, const float *r,
                  const float *ln_w, const float *ln_b, float eps, int M, float T, af_rng *rng);
/* Sets (overwrites) dh, dr (either NULL: not needed) and accumulates the adapter and fusion
 * gradients (when s has gradient views) from dout, for the h, r of the last forward. The LN
 * weights get no gradient. */
void site_backward(float *dh, float *dr, site_cache *c, const site *s, const float *dout,
                   const float *h, const float *r, const float *ln_w, int M);

#endif
