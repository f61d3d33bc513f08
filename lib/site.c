/* site.c: adapters and fusion at one encoder site; see site.h. */
#include "site.h"

#include <string.h>

#include "ops.h"

int site_arch_parse(const char *name) {
    if (!strcmp(name, "pfeiffer")) return SITE_PFEIFFER;
    if (!strcmp(name, "houlsby")) return SITE_HOULSBY;
    if (!strcmp(name, "none")) return SITE_NONE;
    return -1;
}

const char *site_arch_name(int arch) {
    return arch == SITE_PFEIFFER  ? "pfeiffer"
           : arch == SITE_HOULSBY ? "houlsby"
           : arch == SITE_NONE    ? "none"
                                  : "?";
}

int site_check(const site *s, af_err *e) {
    if (s->arch != SITE_PFEIFFER && s->arch != SITE_HOULSBY)
        return af_errf(e, "site: unknown architecture %d", s->arch);
    if (s->N < 1) return af_errf(e, "site: at least 1 adapter expected, %d found", s->N);
    if (!s->fusion && s->N != 1)
        return af_errf(e, "site: %d adapters need a fusion layer, none given", s->N);
    int H = s->adapters[0].H;
    for (int i = 1; i < s->N; i++)
        if (s->adapters[i].H != H)
            return af_errf(e, "site: adapter %d: hidden size %d expected, %d found", i, H,
                           s->adapters[i].H);
    if (s->tree) {
        if (!s->fusion || s->tree->nleaves != s->N)
            return af_errf(e, "site: a fusion tree over %d adapters expected, over %d found", s->N,
                           s->tree->nleaves);
        return fusion_tree_check(s->tree, &s->fusion->cfg, e);
    }
    if (s->fusion && (s->fusion->cfg.H != H || s->fusion->cfg.N != s->N))
        return af_errf(e,
                       "site: fusion for %d adapters of size %d expected, for %d of size %d "
                       "found",
                       s->N, H, s->fusion->cfg.N, s->fusion->cfg.H);
    return 0;
}

/* Sizing (mem == NULL) and carving walk the same layout. Shared: the site keeps only what it
 * cannot cheaply compute again (LayerNorm statistics, the fusion's cache and, with a fusion, y);
 * h + r, x, the adapters' outputs and activations (or y), and the backward scratch go to
 * `scratch`, which all sites share (*nscratch: its floats), and the backward recomputes
 * them from h and r. */
static size_t layout(site_cache *c, float *mem, float *scratch, int shared, const site *s, int M,
                     size_t *nscratch) {
    size_t H = s->adapters[0].H, MH = (size_t)M * H, n = 0, k = 0;
    site_cache tmp;
    if (!c) c = &tmp;
    c->M = M;
    c->shared = shared;
#define TAKE(field, count)                                                                         \
    do {                                                                                           \
        c->field = mem ? mem + n : NULL;                                                           \
        n += (count);                                                                              \
    } while (0)
#define TAKE_S(field, count)                                                                       \
    do {                                                                                           \
        if (shared) {                                                                              \
            c->field = scratch ? scratch + k : NULL;                                               \
            k += (count);                                                                          \
        } else {                                                                                   \
            TAKE(field, count);                                                                    \
        }                                                                                          \
    } while (0)
    TAKE_S(hr, MH);
    TAKE_S(x, s->arch == SITE_PFEIFFER ? MH : 0);
    TAKE(mean1, M);
    TAKE(rstd1, M);
    /* a lone adapter writes its output straight into y */
    if (s->fusion) {
        TAKE_S(ups, MH * s->N);
        TAKE(y, MH);
    } else {
        c->ups = NULL;
        TAKE_S(y, MH);
    }
    TAKE(mean2, M);
    TAKE(rstd2, M);
    TAKE_S(dy, MH);
    TAKE_S(dx, MH);
    TAKE_S(dups, s->fusion ? MH * s->N : 0);
#undef TAKE
#undef TAKE_S
    /* the adapters' activations: the backward's recompute() writes them again when shared */
    if (!shared) {
        if (mem) adapter_cache_carve(&c->ac, mem + n, s->adapters, s->N, M);
        n += adapter_cache_floats(s->adapters, s->N, M);
    } else {
        if (scratch) adapter_cache_carve(&c->ac, scratch + k, s->adapters, s->N, M);
        k += adapter_cache_floats(s->adapters, s->N, M);
    }
    if (s->fusion) {
        const fusion_config *fc = &s->fusion->cfg;
        if (!shared) {
            if (mem) fusion_cache_carve(&c->fc, mem + n, fc, M);
            n += fusion_cache_floats(fc, M);
        } else {
            float *fs = scratch ? scratch + k : NULL;
            if (mem) fusion_cache_carve_shared(&c->fc, mem + n, fs, fc, M);
            n += fusion_cache_floats_shared(fc, M);
            size_t kf = fusion_scratch_floats(fc, M);
            /* a tree's inner nodes take the root's fusion scratch in turn */
            if (s->tree && fusion_tree_fusion_scratch_floats(s->tree, M) > kf)
                kf = fusion_tree_fusion_scratch_floats(s->tree, M);
            k += kf;
            if (s->tree) {
                n += (n & 1); /* the tree's caches hold pointers: 8-byte aligned */
                if (mem)
                    fusion_tree_cache_carve(&c->tc, mem + n, scratch ? scratch + k : NULL, fs,
                                            s->tree, fc, M);
                n += fusion_tree_cache_floats(s->tree, fc, M);
                k += fusion_tree_scratch_floats(s->tree, fc, M);
            }
        }
        if (s->tree && !shared) {
            n += (n & 1);
            if (mem) fusion_tree_cache_carve(&c->tc, mem + n, NULL, NULL, s->tree, fc, M);
            n += fusion_tree_cache_floats_own(s->tree, fc, M);
        }
    } else {
        memset(&c->fc, 0, sizeof c->fc);
    }
    if (nscratch) *nscratch = k;
    return n;
}

size_t site_cache_floats(const site *s, int M) {
    return layout(NULL, NULL, NULL, 0, s, M, NULL);
}

void site_cache_carve(site_cache *c, float *mem, const site *s, int M) {
    layout(c, mem, NULL, 0, s, M, NULL);
}

size_t site_cache_floats_shared(const site *s, int M) {
    return layout(NULL, NULL, NULL, 1, s, M, NULL);
}

size_t site_scratch_floats(const site *s, int M) {
    size_t k;
    layout(NULL, NULL, NULL, 1, s, M, &k);
    return k;
}

void site_cache_carve_shared(site_cache *c, float *mem, float *scratch, const site *s, int M) {
    layout(c, mem, scratch, 1, s, M, NULL);
}

/* h + r: kept in c->hr, or given as h when r is NULL (a Pfeiffer site's encoder may pass the
 * sum, bert_hooks.sum_only). */
static const float *hplusr(const site_cache *c, const float *h, const float *r) {
    return r ? c->hr : h;
}

/* h + r, x and the adapters' outputs (or y) as the forward made them: the same operations on
 * the same inputs, so the same bits. */
static void recompute(site_cache *c, const site *s, const float *h, const float *r, int M) {
    int H = s->adapters[0].H;
    size_t MH = (size_t)M * H;
    const float *x = h;
    if (s->arch == SITE_PFEIFFER) {
        layernorm_forward_sum(c->x, NULL, NULL, r ? c->hr : NULL, h, r, c->ln_w, c->ln_b, M, H,
                              c->eps);
        x = c->x;
    } else {
        vec_add2(c->hr, h, r, MH);
    }
    if (s->fusion) {
        adapter_stack_forward(c->ups, &c->ac, x, s->adapters, s->N, M);
    } else {
        adapter_stack_forward(c->y, &c->ac, x, s->adapters, 1, M);
        vec_add(c->y, hplusr(c, h, r), MH);
    }
}

void site_forward(float *out, site_cache *c, const site *s, const float *h, const float *r,
                  const float *ln_w, const float *ln_b, float eps, int M, float T, af_rng *rng) {
    int H = s->adapters[0].H;
    size_t MH = (size_t)M * H;
    c->ln_w = ln_w, c->ln_b = ln_b, c->eps = eps;
    const float *x = h;
    if (s->arch == SITE_PFEIFFER) {
        layernorm_forward_sum(c->x, c->mean1, c->rstd1, r ? c->hr : NULL, h, r, ln_w, ln_b, M, H,
                              eps);
        x = c->x;
    } else {
        vec_add2(c->hr, h, r, MH);
    }
    if (s->fusion) {
        adapter_stack_forward(c->ups, &c->ac, x, s->adapters, s->N, M);
        if (s->tree)
            fusion_tree_forward(c->y, &c->tc, &c->fc, x, c->ups, s->tree, s->fusion, M, T, rng);
        else
            fusion_forward(c->y, &c->fc, x, c->ups, s->fusion, M, T, rng);
    } else {
        adapter_stack_forward(c->y, &c->ac, x, s->adapters, 1, M);
    }
    /* y += h + r: the backward reads y (LN's input) */
    layernorm_forward_sum(out, c->mean2, c->rstd2, c->y, c->y, hplusr(c, h, r), ln_w, ln_b, M, H,
                          eps);
}

void site_backward(float *dh, float *dr, site_cache *c, const site *s, const float *dout,
                   const float *h, const float *r, const float *ln_w, int M) {
    int H = s->adapters[0].H;
    size_t MH = (size_t)M * H;
    const float *x = s->arch == SITE_PFEIFFER ? c->x : h;
    if (c->shared) recompute(c, s, h, r, M);
    /* dy = d out / dy, which h and r receive directly (y = adapters' output + h + r) */
    layernorm_backward_set(c->dy, NULL, NULL, dout, c->y, NULL, ln_w, c->mean2, c->rstd2, M, H);
    /* Everything below reaches h and r only through x; skip it if nothing wants a gradient. */
    int want_x = s->arch == SITE_PFEIFFER ? dh || dr : dh != NULL;
    if (!want_x) {
        if (dh) memcpy(dh, c->dy, MH * sizeof(float));
        if (dr) memcpy(dr, c->dy, MH * sizeof(float));
        if (!s->adapter_grads && !s->fusion_grad) return;
    }
    float *dx = want_x ? c->dx : NULL;
    if (dx) memset(dx, 0, MH * sizeof(float));
    if (s->fusion) {
        memset(c->dups, 0, MH * s->N * sizeof(float));
        if (s->tree)
            fusion_tree_backward(dx, c->dups, s->fusion_grad, &c->tc, &c->fc, c->dy, x, c->ups,
                                 s->tree, s->fusion, M);
        else
            fusion_backward(dx, c->dups, s->fusion_grad, &c->fc, c->dy, x, c->ups, s->fusion, M);
        adapter_stack_backward(dx, s->adapter_grads, &c->ac, c->dups, x, s->adapters, s->N, M);
    } else {
        adapter_stack_backward(dx, s->adapter_grads, &c->ac, c->dy, x, s->adapters, 1, M);
    }
    if (!dx) return;
    if (s->arch == SITE_HOULSBY) { /* x = h: dh = dy + dx, dr = dy */
        vec_add2(dh, c->dy, dx, MH);
        if (dr) memcpy(dr, c->dy, MH * sizeof(float));
        return;
    }
    /* x = LN1(h + r): h and r both receive dy + LN1's backward of dx */
    layernorm_backward_set(dh ? dh : dr, dh ? dr : NULL, c->dy, dx, hplusr(c, h, r), NULL, ln_w,
                           c->mean1, c->rstd1, M, H);
}
