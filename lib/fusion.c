/* fusion.c: what every fusion method shares: the table of methods, parameters and their
 * carving, the cache walk, dispatch, and the weighted sum of the adapters' outputs. The methods
 * themselves are in fusion_attention.c (attention, static), fusion_multihead.c,
 * fusion_weighted.c and fusion_gating.c; the definitions and AdapterHub references in fusion.h. */
#include "fusion.h"

#include <stdio.h>
#include <string.h>

#include "fusion_method.h"
#include "ops.h"

/* Indexed by fusion_method. */
static const fusion_method_ops *const methods[] = {[FUSION_ATTENTION] = &fusion_attention_ops,
                                                   [FUSION_STATIC] = &fusion_static_ops,
                                                   [FUSION_MULTIHEAD] = &fusion_multihead_ops,
                                                   [FUSION_WEIGHTED] = &fusion_weighted_ops,
                                                   [FUSION_GATING] = &fusion_gating_ops};
#define NMETHODS (int)(sizeof methods / sizeof *methods)

static const fusion_method_ops *ops(int method) {
    return method >= 0 && method < NMETHODS ? methods[method] : NULL;
}

int fusion_method_parse(const char *name) {
    for (int i = 0; i < NMETHODS; i++)
        if (!strcmp(name, methods[i]->name)) return i;
    return -1;
}

const char *fusion_method_name(int method) {
    return ops(method) ? ops(method)->name : "?";
}

int fusion_config_check(const fusion_config *cfg, af_err *e) {
    const fusion_method_ops *m = ops(cfg->method);
    if (!m) return af_errf(e, "fusion: unknown method %d", cfg->method);
    if (cfg->N < 1) return af_errf(e, "fusion: at least 1 adapter expected, %d found", cfg->N);
    if (cfg->H < 2) return af_errf(e, "fusion: hidden size >= 2 expected, %d found", cfg->H);
    if (m->check && m->check(cfg, e)) return -1;
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return af_errf(e, "fusion: dropout in [0, 1) expected, %g found", cfg->dropout);
    return 0;
}

void fusion_config_to_json(cJSON *j, const fusion_config *cfg) {
    const fusion_method_ops *m = ops(cfg->method);
    if (m && m->to_json) m->to_json(j, cfg);
}

int fusion_config_from_json(fusion_config *cfg, const cJSON *j, af_err *e) {
    const fusion_method_ops *m = ops(cfg->method);
    return m && m->from_json ? m->from_json(cfg, j, e) : 0;
}

int fusion_method_takes(int method, const char *option) {
    const fusion_method_ops *m = ops(method);
    for (int i = 0; m && m->options && m->options[i]; i++)
        if (!strcmp(m->options[i], option)) return 1;
    return 0;
}

void fusion_methods_taking(char *buf, size_t cap, const char *option) {
    size_t n = 0;
    int k = 0;
    buf[0] = 0;
    for (int i = 0; i < NMETHODS; i++)
        if (fusion_method_takes(i, option) && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", k++ ? " or " : "", methods[i]->name);
}

int fusion_uses_input(const fusion_config *cfg) {
    return ops(cfg->method)->uses_x;
}

/* ---- parameters --------------------------------------------------------------------------- */

static int64_t dim(fusion_dim d, const fusion_config *cfg) {
    switch (d) {
    case FD_H:
        return cfg->H;
    case FD_3H:
        return 3 * (int64_t)cfg->H;
    case FD_H2:
        return cfg->H / 2;
    case FD_N:
        return cfg->N;
    default:
        return 0;
    }
}

int fusion_param_count(const fusion_config *cfg) {
    return ops(cfg->method)->nparams;
}

int fusion_params(param_desc *out, const fusion_config *cfg) {
    const fusion_method_ops *m = ops(cfg->method);
    size_t off = 0;
    for (int i = 0; i < m->nparams; i++) {
        const fusion_param_spec *s = &m->params[i];
        int64_t r = dim(s->rows, cfg), c = dim(s->cols, cfg);
        size_t k = (size_t)r * (c ? (size_t)c : 1);
        int train = s->train == FP_TRAIN || (s->train == FP_TRAIN_UNLESS_FIXED && !cfg->fixed);
        out[i] = (param_desc){s->name, c ? 2 : 1, {r, c}, off, k, s->decay, train};
        off += k;
    }
    return m->nparams;
}

size_t fusion_nparams(const fusion_config *cfg) {
    param_desc p[fusion_param_count(cfg)];
    int n = fusion_params(p, cfg);
    return n ? p[n - 1].offset + p[n - 1].numel : 0;
}

void fusion_carve(fusion *f, const fusion_config *cfg, float *buf) {
    param_desc p[fusion_param_count(cfg)];
    const fusion_method_ops *m = ops(cfg->method);
    int n = fusion_params(p, cfg);
    memset(f, 0, sizeof *f);
    f->cfg = *cfg;
    for (int i = 0; i < n; i++) *(float **)((char *)f + m->params[i].field) = buf + p[i].offset;
}

void fusion_normal(float *t, size_t n, af_rng *rng) {
    for (size_t k = 0; k < n; k++) t[k] = 0.02f * af_rng_normal(rng);
}

void fusion_init(fusion *f, af_rng *rng) {
    ops(f->cfg.method)->init(f, rng);
}

double fusion_temperature(long step) {
    double T = 50.0 - 0.05 * (double)step;
    return T > 1.0 ? T : 1.0;
}

/* ---- cache -------------------------------------------------------------------------------- */

float *fusion_take(fusion_layout *L, size_t count) {
    float *p = L->mem ? L->mem + L->n : NULL;
    L->n += count;
    return p;
}

/* a temporary at offset k of the scratch; without a shared scratch, after what is kept */
float *fusion_take_scratch(fusion_layout *L, size_t count) {
    float *p = L->shared ? L->scratch + L->k : L->mem ? L->mem + L->n + L->k : NULL;
    L->k += count;
    return p;
}

void fusion_take_mask(fusion_layout *L, size_t count) {
    L->c->mask = L->mem ? (uint8_t *)(L->mem + L->n) : NULL;
    L->n += (count + 3) / 4;
}

/* One walk over the cache layout serves both sizing (mem == NULL) and carving: what the forward
 * keeps goes to mem, the temporaries to scratch (*nscratch floats), or, with scratch NULL, to mem
 * after the rest. Shared (scratch given): the caller may let other layers use the scratch between
 * this layer's forward and backward, so what the backward reads from there it computes again. */
static size_t layout(fusion_cache *c, float *mem, float *scratch, const fusion_config *cfg, int M,
                     size_t *nscratch) {
    fusion_cache tmp;
    if (!c) c = &tmp;
    memset(c, 0, sizeof *c);
    c->M = M;
    c->shared = scratch != NULL;
    fusion_layout L = {c, mem, scratch, 0, 0, scratch != NULL};
    c->p = fusion_take(&L, (size_t)M * cfg->N);
    ops(cfg->method)->layout(&L, cfg, M);
    if (nscratch) *nscratch = L.k;
    return L.shared ? L.n : L.n + L.k;
}

size_t fusion_cache_floats(const fusion_config *cfg, int M) {
    return layout(NULL, NULL, NULL, cfg, M, NULL);
}

void fusion_cache_carve(fusion_cache *c, float *mem, const fusion_config *cfg, int M) {
    layout(c, mem, NULL, cfg, M, NULL);
}

size_t fusion_scratch_floats(const fusion_config *cfg, int M) {
    size_t k;
    float dummy;
    layout(NULL, NULL, &dummy, cfg, M, &k);
    return k;
}

size_t fusion_cache_floats_shared(const fusion_config *cfg, int M) {
    float dummy;
    return layout(NULL, NULL, &dummy, cfg, M, NULL);
}

void fusion_cache_carve_shared(fusion_cache *c, float *mem, float *scratch,
                               const fusion_config *cfg, int M) {
    layout(c, mem, scratch, cfg, M, NULL);
}

/* The per-token loops below run over tokens in parallel (af_parallel): tokens are independent. */
typedef struct {
    float *o, *dp, *dups;
    const float *p, *ups, *dmix;
    int N, H;
} mix_job;

static void mix_fwd_part(void *vp, int lo, int hi) {
    const mix_job *j = vp;
    int N = j->N, H = j->H;
    for (int m = lo; m < hi; m++)
        vec_mix(j->o + (size_t)m * H, j->p + (size_t)m * N, j->ups + (size_t)m * N * H, N, H);
}

void fusion_mix_forward(float *o, const float *p, const float *ups, int M, int N, int H) {
    mix_job j = {.o = o, .p = p, .ups = ups, .N = N, .H = H};
    af_parallel(M, mix_fwd_part, &j);
}

static void mix_bwd_part(void *vp, int lo, int hi) {
    const mix_job *j = vp;
    int N = j->N, H = j->H;
    for (int m = lo; m < hi; m++)
        for (int i = 0; i < N; i++) {
            size_t k = (size_t)m * N + i;
            j->dp[k] = vec_dot(j->dmix + (size_t)m * H, j->ups + k * H, H);
            if (j->dups) vec_axpy(j->dups + k * H, j->p[k], j->dmix + (size_t)m * H, H);
        }
}

void fusion_mix_backward(float *dp, float *dups, const float *dmix, const float *p,
                         const float *ups, int M, int N, int H) {
    mix_job j = {.dp = dp, .dups = dups, .dmix = dmix, .p = p, .ups = ups, .N = N, .H = H};
    af_parallel(M, mix_bwd_part, &j);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void fusion_forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng) {
    const fusion_method_ops *m = ops(f->cfg.method);
    c->T = T;
    c->dropped = rng && f->cfg.dropout > 0 && m->dropout;
    m->forward(o, c, x, ups, f, M, T, c->dropped ? rng : NULL);
}

void fusion_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M) {
    ops(f->cfg.method)->backward(dx, dups, g, c, dout, x, ups, f, M);
}

int fusion_has_static_weights(const fusion_config *cfg) {
    return ops(cfg->method)->static_weights != NULL;
}

int fusion_static_weights(float *w, const fusion *f) {
    const fusion_method_ops *m = ops(f->cfg.method);
    if (!m->static_weights) return -1;
    m->static_weights(w, f);
    return 0;
}

double fusion_reg_forward(const fusion *f) {
    const fusion_method_ops *m = ops(f->cfg.method);
    return m->reg_forward ? m->reg_forward(f) : 0;
}

void fusion_reg_backward(fusion *g, const fusion *f, float scale) {
    const fusion_method_ops *m = ops(f->cfg.method);
    if (m->reg_backward) m->reg_backward(g, f, scale);
}
