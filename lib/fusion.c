/* fusion.c: the fusion methods of lib/README.md ("The model"); definitions and AdapterHub
 * references in fusion.h. */
#include "fusion.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "ops.h"

static const char *method_names[] = {"attention", "static", "multihead", "weighted", "gating"};
#define NMETHODS (int)(sizeof method_names / sizeof *method_names)

int fusion_method_parse(const char *name) {
    for (int i = 0; i < NMETHODS; i++)
        if (!strcmp(name, method_names[i])) return i;
    return -1;
}

const char *fusion_method_name(int method) {
    return method >= 0 && method < NMETHODS ? method_names[method] : "?";
}

int fusion_config_check(const fusion_config *cfg, af_err *e) {
    if (cfg->method < 0 || cfg->method >= NMETHODS)
        return af_errf(e, "fusion: unknown method %d", cfg->method);
    if (cfg->N < 1) return af_errf(e, "fusion: at least 1 adapter expected, %d found", cfg->N);
    if (cfg->H < 2) return af_errf(e, "fusion: hidden size >= 2 expected, %d found", cfg->H);
    if (cfg->method == FUSION_MULTIHEAD && (cfg->heads < 1 || cfg->H % cfg->heads))
        return af_errf(e, "fusion: multihead: heads dividing hidden size %d expected, %d found",
                       cfg->H, cfg->heads);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return af_errf(e, "fusion: dropout in [0, 1) expected, %g found", cfg->dropout);
    return 0;
}

/* ---- parameters --------------------------------------------------------------------------- */

int fusion_params(param_desc out[FUSION_MAX_PARAMS], const fusion_config *cfg) {
    int64_t H = cfg->H, N = cfg->N, H2 = cfg->H / 2;
    size_t off = 0;
    int n = 0;
#define P(nm, d0, d1, dec, tr)                                                                     \
    do {                                                                                           \
        size_t k = (size_t)(d0) * ((d1) ? (size_t)(d1) : 1);                                       \
        out[n++] = (param_desc){nm, (d1) ? 2 : 1, {d0, d1}, off, k, dec, tr};                      \
        off += k;                                                                                  \
    } while (0)
    switch (cfg->method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        P("query.weight", H, H, 1, 1);
        P("query.bias", H, 0, 0, 1);
        P("key.weight", H, H, 1, 1);
        P("key.bias", H, 0, 0, 1);
        if (cfg->method == FUSION_ATTENTION) P("value.weight", H, H, 1, 1);
        break;
    case FUSION_MULTIHEAD:
        P("in_proj_weight", 3 * H, H, 1, 1);
        P("in_proj_bias", 3 * H, 0, 0, 1);
        P("out_proj.weight", H, H, 1, 1);
        P("out_proj.bias", H, 0, 0, 1);
        break;
    case FUSION_WEIGHTED:
        P("weights", N, 0, 1, !cfg->fixed);
        break;
    case FUSION_GATING:
        P("gate.0.weight", H2, H, 1, 1);
        P("gate.0.bias", H2, 0, 0, 1);
        P("gate.3.weight", N, H2, 1, 1);
        P("gate.3.bias", N, 0, 0, 1);
        break;
    }
#undef P
    return n;
}

size_t fusion_nparams(const fusion_config *cfg) {
    param_desc p[FUSION_MAX_PARAMS];
    int n = fusion_params(p, cfg);
    return n ? p[n - 1].offset + p[n - 1].numel : 0;
}

void fusion_carve(fusion *f, const fusion_config *cfg, float *buf) {
    param_desc p[FUSION_MAX_PARAMS];
    int n = fusion_params(p, cfg);
    memset(f, 0, sizeof *f);
    f->cfg = *cfg;
    /* In fusion_params' order for each method. */
    float **slots[5] = {0};
    switch (cfg->method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        slots[0] = &f->query_w, slots[1] = &f->query_b, slots[2] = &f->key_w;
        slots[3] = &f->key_b, slots[4] = &f->value_w;
        break;
    case FUSION_MULTIHEAD:
        slots[0] = &f->in_w, slots[1] = &f->in_b, slots[2] = &f->out_w, slots[3] = &f->out_b;
        break;
    case FUSION_WEIGHTED:
        slots[0] = &f->weights;
        break;
    case FUSION_GATING:
        slots[0] = &f->gate0_w, slots[1] = &f->gate0_b, slots[2] = &f->gate3_w;
        slots[3] = &f->gate3_b;
        break;
    }
    for (int i = 0; i < n; i++) *slots[i] = buf + p[i].offset;
}

static void normal(float *t, size_t n, af_rng *rng) {
    for (size_t k = 0; k < n; k++) t[k] = 0.02f * af_rng_normal(rng);
}

static void zero(float *t, size_t n) {
    memset(t, 0, n * sizeof(float));
}

void fusion_init(fusion *f, af_rng *rng) {
    size_t H = f->cfg.H, N = f->cfg.N, H2 = f->cfg.H / 2;
    switch (f->cfg.method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        normal(f->query_w, H * H, rng), zero(f->query_b, H);
        normal(f->key_w, H * H, rng), zero(f->key_b, H);
        if (f->value_w)
            for (size_t r = 0; r < H; r++)
                for (size_t c = 0; c < H; c++) f->value_w[r * H + c] = r == c ? 1.0f : 1e-6f;
        break;
    case FUSION_MULTIHEAD:
        normal(f->in_w, 3 * H * H, rng), zero(f->in_b, 3 * H);
        normal(f->out_w, H * H, rng), zero(f->out_b, H);
        break;
    case FUSION_WEIGHTED:
        zero(f->weights, N); /* softmax(0) = uniform */
        break;
    case FUSION_GATING:
        normal(f->gate0_w, H2 * H, rng), zero(f->gate0_b, H2);
        normal(f->gate3_w, N * H2, rng), zero(f->gate3_b, N);
        break;
    }
}

double fusion_temperature(long step) {
    double T = 50.0 - 0.05 * (double)step;
    return T > 1.0 ? T : 1.0;
}

/* ---- cache -------------------------------------------------------------------------------- */

/* One walk over the cache layout serves both sizing (mem == NULL) and carving: what the forward
 * keeps goes to mem (n floats), the temporaries to scratch (*nscratch floats), or, with scratch
 * NULL, to mem after the rest. Shared (scratch given): the caller may let other layers use the
 * scratch between this layer's forward and backward, so what the backward reads from there it
 * computes again (q, the mix). */
static size_t layout(fusion_cache *c, float *mem, float *scratch, const fusion_config *cfg, int M,
                     size_t *nscratch) {
    size_t n = 0, k = 0, H = cfg->H, N = cfg->N, H2 = cfg->H / 2, mm = M;
    int shared = scratch != NULL;
    fusion_cache tmp;
    if (!c) c = &tmp;
    memset(c, 0, sizeof *c);
    c->M = M;
    c->shared = shared;
#define TAKE(field, count)                                                                         \
    do {                                                                                           \
        c->field = mem ? mem + n : NULL;                                                           \
        n += (count);                                                                              \
    } while (0)
    /* a temporary at offset k of the scratch */
#define TAKE_S(field, count)                                                                       \
    do {                                                                                           \
        if (shared) c->field = scratch + k;                                                        \
        else c->field = mem ? mem + n + k : NULL;                                                  \
        k += (count);                                                                              \
    } while (0)
#define TAKE_MASK(count)                                                                           \
    do {                                                                                           \
        c->mask = mem ? (uint8_t *)(mem + n) : NULL;                                               \
        n += ((count) + 3) / 4;                                                                    \
    } while (0)
    TAKE(p, mm * N);
    switch (cfg->method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        TAKE(u, mm * H);
        TAKE_MASK(mm * N);
        /* kept unless shared: shared, the backward computes q from x again (one product, for
         * the M·H floats it would keep) and q and the mix take the places of the backward's
         * dmix and du (qk_backward: each is read before the other is written) */
        if (!shared) {
            TAKE(q, mm * H);
            if (cfg->method == FUSION_ATTENTION) TAKE(mix, mm * H);
        }
        /* the backward's temporaries (qk_backward): dmix (then dq), du, dc */
        TAKE_S(scratch, 2 * mm * H + mm);
        if (shared) {
            c->q = c->scratch;
            if (cfg->method == FUSION_ATTENTION) c->mix = c->scratch + mm * H;
        }
        break;
    case FUSION_MULTIHEAD:
        TAKE(qkv, mm * N * 3 * H);
        TAKE(att, mm * cfg->heads * N * N);
        TAKE(mix, mm * H);
        TAKE_MASK(mm * cfg->heads * N * N);
        TAKE_S(scratch, mm * N * 3 * H + mm * H + 3 * N * N + N);
        break;
    case FUSION_WEIGHTED:
        TAKE(sw, N);
        TAKE_S(scratch, N);
        break;
    case FUSION_GATING:
        TAKE(z1, mm * H2);
        TAKE(h1, mm * H2);
        TAKE(hd, mm * H2);
        TAKE_MASK(mm * H2);
        TAKE_S(scratch, 2 * mm * N + 3 * mm * H2);
        break;
    }
#undef TAKE
#undef TAKE_S
#undef TAKE_MASK
    if (nscratch) *nscratch = k;
    return shared ? n : n + k;
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
    float *o, *dp, *dups, *s, *du, *dc;
    const float *p, *ups, *dmix, *q, *u, *kb;
    const uint8_t *mask; /* the scores' dropout mask (NULL: none) */
    float T, scale;      /* temperature; 1/(1 − dropout) */
    int N, H;
} tok_job;

static void mix_fwd_part(void *vp, int lo, int hi) {
    const tok_job *j = vp;
    int N = j->N, H = j->H;
    for (int m = lo; m < hi; m++)
        vec_mix(j->o + (size_t)m * H, j->p + (size_t)m * N, j->ups + (size_t)m * N * H, N, H);
}

/* o[m] = Σ_i p[m,i]·ups[m,i] */
static void mix_forward(float *o, const float *p, const float *ups, int M, int N, int H) {
    tok_job j = {.o = o, .p = p, .ups = ups, .N = N, .H = H};
    af_parallel(M, mix_fwd_part, &j);
}

static void mix_bwd_part(void *vp, int lo, int hi) {
    const tok_job *j = vp;
    int N = j->N, H = j->H;
    for (int m = lo; m < hi; m++)
        for (int i = 0; i < N; i++) {
            size_t k = (size_t)m * N + i;
            j->dp[k] = vec_dot(j->dmix + (size_t)m * H, j->ups + k * H, H);
            if (j->dups) vec_axpy(j->dups + k * H, j->p[k], j->dmix + (size_t)m * H, H);
        }
}

/* dp[m,i] = dmix[m]·ups[m,i] (overwritten); dups[m,i] += p[m,i]·dmix[m] */
static void mix_backward(float *dp, float *dups, const float *dmix, const float *p,
                         const float *ups, int M, int N, int H) {
    tok_job j = {.dp = dp, .dups = dups, .dmix = dmix, .p = p, .ups = ups, .N = N, .H = H};
    af_parallel(M, mix_bwd_part, &j);
}

/* s[m,i] = u[m]·ups[m,i] + q[m]·bk */
static void score_part(void *vp, int lo, int hi) {
    const tok_job *j = vp;
    int N = j->N, H = j->H;
    for (int m = lo; m < hi; m++) {
        float qb = vec_dot(j->q + (size_t)m * H, j->kb, H);
        for (int i = 0; i < N; i++)
            j->s[m * N + i] =
                vec_dot(j->u + (size_t)m * H, j->ups + ((size_t)m * N + i) * H, H) + qb;
    }
}

/* From dmix[m] back to the scores, per token, in one pass over its ups (the steps and their
 * order of rounding are those of mix_backward, softmax_backward, /T, dropout_backward and the
 * score backward run one after the other):
 *   dp_i = dmix·up_i;  ds = dropout(softmax'(p)·dp / T);  dups_i += p_i·dmix + ds_i·u;
 *   du = Σ_i ds_i·up_i;  dc = Σ_i ds_i */
static void qk_bwd_part(void *vp, int lo, int hi) {
    const tok_job *j = vp;
    int N = j->N, H = j->H;
    float dp[N], ds[N]; /* N: the adapters, a handful */
    for (int m = lo; m < hi; m++) {
        const float *p = j->p + (size_t)m * N, *ups = j->ups + (size_t)m * N * H;
        const float *dmix = j->dmix + (size_t)m * H, *u = j->u + (size_t)m * H;
        float dot = 0;
        for (int i = 0; i < N; i++) dp[i] = vec_dot(dmix, ups + (size_t)i * H, H);
        for (int i = 0; i < N; i++) dot += dp[i] * p[i];
        for (int i = 0; i < N; i++) {
            float d = p[i] * (dp[i] - dot) / j->T;
            ds[i] = !j->mask ? d : j->mask[(size_t)m * N + i] ? d * j->scale : 0.0f;
        }
        float *du = j->du + (size_t)m * H;
        memset(du, 0, H * sizeof(float));
        j->dc[m] = 0;
        for (int i = 0; i < N; i++) {
            if (j->dups) {
                vec_axpy(j->dups + ((size_t)m * N + i) * H, p[i], dmix, H);
                vec_axpy(j->dups + ((size_t)m * N + i) * H, ds[i], u, H);
            }
            vec_axpy(du, ds[i], ups + (size_t)i * H, H);
            j->dc[m] += ds[i];
        }
    }
}

/* ---- attention, static -------------------------------------------------------------------- */

static void qk_forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                       int M, float T, af_rng *rng) {
    int H = f->cfg.H, N = f->cfg.N;
    float *s = c->p;
    linear_forward(c->q, x, f->query_w, f->query_b, M, H, H);
    /* u = Wkᵀq, so q·k_i = u·up_i + q·bk */
    gemm(0, 0, M, H, H, 1.0f, c->q, H, f->key_w, H, 0.0f, c->u, H);
    tok_job sj = {.s = s, .q = c->q, .u = c->u, .kb = f->key_b, .ups = ups, .N = N, .H = H};
    af_parallel(M, score_part, &sj);
    if (c->dropped) dropout_forward(s, c->mask, s, (size_t)M * N, f->cfg.dropout, rng);
    for (size_t k = 0; k < (size_t)M * N; k++) s[k] /= T;
    softmax_forward(c->p, s, M, N);
    if (f->cfg.method == FUSION_ATTENTION) {
        /* Σ p_i·Wv·up_i = Wv·Σ p_i·up_i: one value product per token */
        mix_forward(c->mix, c->p, ups, M, N, H);
        linear_forward(o, c->mix, f->value_w, NULL, M, H, H);
    } else {
        mix_forward(o, c->p, ups, M, N, H);
    }
}

static void qk_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                        const float *x, const float *ups, const fusion *f, int M) {
    int H = f->cfg.H, N = f->cfg.N;
    size_t MH = (size_t)M * H;
    /* qk_bwd_part is dmix's last reader: then (shared) q, computed again, takes its place, and
     * dq once q is read */
    float *dmix = c->scratch, *du = dmix + MH, *dq = dmix, *dc = du + MH;
    if (f->cfg.method == FUSION_ATTENTION) {
        /* Σ p_i up_i again: a shared cache lets other fusion layers overwrite it */
        if (g) mix_forward(c->mix, c->p, ups, M, N, H);
        linear_backward_set(dmix, dout, f->value_w, M, H, H);
        if (g) linear_backward(NULL, g->value_w, NULL, dout, c->mix, f->value_w, M, H, H);
    } else {
        memcpy(dmix, dout, MH * sizeof(float));
    }
    tok_job bj = {.du = du, .dups = dups, .dc = dc, .dmix = dmix, .p = c->p, .ups = ups,
                  .u = c->u, .mask = c->dropped && f->cfg.dropout > 0 ? c->mask : NULL,
                  .T = c->T, .scale = 1.0f / (1.0f - f->cfg.dropout), .N = N, .H = H};
    af_parallel(M, qk_bwd_part, &bj);
    if (!dx && !g) return;
    /* u = q·Wk (row vectors): dWk += qᵀ·du, dbk += Σ dc·q, dq = du·Wkᵀ + dc·bk */
    if (g) {
        if (c->shared) linear_forward(c->q, x, f->query_w, f->query_b, M, H, H); /* as forward */
        gemm(1, 0, H, H, M, 1.0f, c->q, H, du, H, 1.0f, g->key_w, H);
        cblas_sgemv(CblasRowMajor, CblasTrans, M, H, 1.0f, c->q, H, dc, 1, 1.0f, g->key_b, 1);
    }
    /* the rank-1 term dc ⊗ bk as a product with K = 1 */
    gemm(0, 1, M, H, H, 1.0f, du, H, f->key_w, H, 0.0f, dq, H);
    gemm(0, 0, M, H, 1, 1.0f, dc, 1, f->key_b, H, 1.0f, dq, H);
    linear_backward(dx, g ? g->query_w : NULL, g ? g->query_b : NULL, dq, x, f->query_w, M, H, H);
}

/* ---- multihead ---------------------------------------------------------------------------- */

/* The dropped-out attention of one (token, head) into out[N,N], and its column means cm[N]. */
static void mh_dropped(float *out, float *cm, const fusion_cache *c, const float *A,
                       const uint8_t *mask, int N, float p) {
    float keep = 1.0f / (1.0f - p);
    for (int k = 0; k < N * N; k++) out[k] = c->dropped ? (mask[k] ? A[k] * keep : 0.0f) : A[k];
    for (int j = 0; j < N; j++) {
        float s = 0;
        for (int i = 0; i < N; i++) s += out[i * N + j];
        cm[j] = s / N;
    }
}

static void multihead_forward(float *o, fusion_cache *c, const float *ups, const fusion *f, int M,
                              float T, af_rng *rng) {
    int H = f->cfg.H, N = f->cfg.N, nh = f->cfg.heads, d = H / nh;
    float scale = 1.0f / (sqrtf((float)d) * T), pdrop = f->cfg.dropout;
    float *Ad = c->scratch, *cm = Ad + N * N;
    linear_forward(c->qkv, ups, f->in_w, f->in_b, M * N, H, 3 * H);
    memset(c->mix, 0, (size_t)M * H * sizeof(float));
    memset(c->p, 0, (size_t)M * N * sizeof(float));
    for (int m = 0; m < M; m++) {
        const float *qkv = c->qkv + (size_t)m * N * 3 * H;
        for (int h = 0; h < nh; h++) {
            size_t ah = ((size_t)m * nh + h) * N * N;
            float *A = c->att + ah;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++)
                    A[i * N + j] =
                        vec_dot(qkv + i * 3 * H + h * d, qkv + j * 3 * H + H + h * d, d) * scale;
            softmax_forward(A, A, N, N);
            if (c->dropped) {
                for (int k = 0; k < N * N; k++) c->mask[ah + k] = af_rng_uniform(rng) >= pdrop;
            }
            mh_dropped(Ad, cm, c, A, c->mask ? c->mask + ah : NULL, N, pdrop);
            /* ȳ_h = (1/N)·Σ_i Σ_j A_ij·V_j,h = Σ_j colmean_j·V_j,h */
            for (int j = 0; j < N; j++) {
                vec_axpy(c->mix + (size_t)m * H + h * d, cm[j], qkv + j * 3 * H + 2 * H + h * d, d);
                float s = 0;
                for (int i = 0; i < N; i++) s += A[i * N + j];
                c->p[(size_t)m * N + j] += s / N / nh;
            }
        }
    }
    linear_forward(o, c->mix, f->out_w, f->out_b, M, H, H);
}

static void multihead_backward(float *dups, fusion *g, fusion_cache *c, const float *dout,
                               const float *ups, const fusion *f, int M) {
    int H = f->cfg.H, N = f->cfg.N, nh = f->cfg.heads, d = H / nh;
    float scale = 1.0f / (sqrtf((float)d) * c->T), pdrop = f->cfg.dropout;
    size_t n3 = (size_t)M * N * 3 * H;
    float *dqkv = c->scratch, *dmix = dqkv + n3, *Ad = dmix + (size_t)M * H;
    float *dAd = Ad + N * N, *dA = dAd + N * N, *cm = dA + N * N;
    memset(dmix, 0, (size_t)M * H * sizeof(float));
    linear_backward(dmix, g ? g->out_w : NULL, g ? g->out_b : NULL, dout, c->mix, f->out_w, M, H,
                    H);
    if (!dups && !g) return;
    memset(dqkv, 0, n3 * sizeof(float));
    for (int m = 0; m < M; m++) {
        const float *qkv = c->qkv + (size_t)m * N * 3 * H, *dy = dmix + (size_t)m * H;
        float *dqk = dqkv + (size_t)m * N * 3 * H;
        for (int h = 0; h < nh; h++) {
            size_t ah = ((size_t)m * nh + h) * N * N;
            const float *A = c->att + ah;
            mh_dropped(Ad, cm, c, A, c->mask ? c->mask + ah : NULL, N, pdrop);
            for (int j = 0; j < N; j++) {
                vec_axpy(dqk + j * 3 * H + 2 * H + h * d, cm[j], dy + h * d, d); /* dV_j */
                float dcm = vec_dot(dy + h * d, qkv + j * 3 * H + 2 * H + h * d, d);
                for (int i = 0; i < N; i++) dAd[i * N + j] = dcm / N;
            }
            memset(dA, 0, N * N * sizeof(float));
            dropout_backward(dA, dAd, c->dropped ? c->mask + ah : NULL, (size_t)N * N, pdrop);
            memset(Ad, 0, N * N * sizeof(float)); /* reused: d(scores) */
            softmax_backward(Ad, dA, A, N, N);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    float ds = Ad[i * N + j] * scale;
                    vec_axpy(dqk + i * 3 * H + h * d, ds, qkv + j * 3 * H + H + h * d, d);
                    vec_axpy(dqk + j * 3 * H + H + h * d, ds, qkv + i * 3 * H + h * d, d);
                }
        }
    }
    linear_backward(dups, g ? g->in_w : NULL, g ? g->in_b : NULL, dqkv, ups, f->in_w, M * N, H,
                    3 * H);
}

/* ---- weighted ----------------------------------------------------------------------------- */

static void weighted_forward(float *o, fusion_cache *c, const float *ups, const fusion *f, int M) {
    int N = f->cfg.N;
    softmax_forward(c->sw, f->weights, 1, N);
    for (int m = 0; m < M; m++) memcpy(c->p + (size_t)m * N, c->sw, N * sizeof(float));
    mix_forward(o, c->p, ups, M, N, f->cfg.H);
}

static void weighted_backward(float *dups, fusion *g, fusion_cache *c, const float *dout,
                              const float *ups, const fusion *f, int M) {
    int N = f->cfg.N, H = f->cfg.H;
    float *dsw = c->scratch;
    memset(dsw, 0, N * sizeof(float));
    for (int m = 0; m < M; m++)
        for (int i = 0; i < N; i++) {
            size_t k = (size_t)m * N + i;
            dsw[i] += vec_dot(dout + (size_t)m * H, ups + k * H, H);
            if (dups) vec_axpy(dups + k * H, c->sw[i], dout + (size_t)m * H, H);
        }
    if (g && !f->cfg.fixed) softmax_backward(g->weights, dsw, c->sw, 1, N);
}

/* ---- gating ------------------------------------------------------------------------------- */

static void gating_forward(float *o, fusion_cache *c, const float *x, const float *ups,
                           const fusion *f, int M, af_rng *rng) {
    int H = f->cfg.H, N = f->cfg.N, H2 = H / 2;
    size_t n2 = (size_t)M * H2;
    float *z2 = c->scratch;
    linear_forward(c->z1, x, f->gate0_w, f->gate0_b, M, H, H2);
    act_forward(c->h1, c->z1, n2, AF_ACT_RELU);
    dropout_forward(c->hd, c->dropped ? c->mask : NULL, c->h1, n2, f->cfg.dropout, rng);
    linear_forward(z2, c->hd, f->gate3_w, f->gate3_b, M, H2, N);
    if (f->cfg.gate_softmax)
        softmax_forward(c->p, z2, M, N);
    else
        act_forward(c->p, z2, (size_t)M * N, AF_ACT_SIGMOID);
    mix_forward(o, c->p, ups, M, N, H);
}

static void gating_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                            const float *x, const float *ups, const fusion *f, int M) {
    int H = f->cfg.H, N = f->cfg.N, H2 = H / 2;
    size_t n2 = (size_t)M * H2, MN = (size_t)M * N;
    float *dp = c->scratch, *dz2 = dp + MN, *dhd = dz2 + MN, *dh1 = dhd + n2, *dz1 = dh1 + n2;
    mix_backward(dp, dups, dout, c->p, ups, M, N, H);
    if (!dx && !g) return;
    if (f->cfg.gate_softmax) {
        memset(dz2, 0, MN * sizeof(float));
        softmax_backward(dz2, dp, c->p, M, N);
    } else {
        for (size_t k = 0; k < MN; k++) dz2[k] = dp[k] * c->p[k] * (1.0f - c->p[k]);
    }
    memset(dhd, 0, 3 * n2 * sizeof(float));
    linear_backward(dhd, g ? g->gate3_w : NULL, g ? g->gate3_b : NULL, dz2, c->hd, f->gate3_w, M,
                    H2, N);
    dropout_backward(dh1, dhd, c->dropped ? c->mask : NULL, n2, f->cfg.dropout);
    act_backward(dz1, dh1, c->z1, n2, AF_ACT_RELU);
    linear_backward(dx, g ? g->gate0_w : NULL, g ? g->gate0_b : NULL, dz1, x, f->gate0_w, M, H, H2);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void fusion_forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng) {
    c->T = T;
    c->dropped = rng && f->cfg.dropout > 0 && f->cfg.method != FUSION_WEIGHTED;
    if (!c->dropped) rng = NULL;
    switch (f->cfg.method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        qk_forward(o, c, x, ups, f, M, T, rng);
        break;
    case FUSION_MULTIHEAD:
        multihead_forward(o, c, ups, f, M, T, rng);
        break;
    case FUSION_WEIGHTED:
        weighted_forward(o, c, ups, f, M);
        break;
    case FUSION_GATING:
        gating_forward(o, c, x, ups, f, M, rng);
        break;
    }
}

void fusion_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M) {
    switch (f->cfg.method) {
    case FUSION_ATTENTION:
    case FUSION_STATIC:
        qk_backward(dx, dups, g, c, dout, x, ups, f, M);
        break;
    case FUSION_MULTIHEAD:
        multihead_backward(dups, g, c, dout, ups, f, M);
        break;
    case FUSION_WEIGHTED:
        weighted_backward(dups, g, c, dout, ups, f, M);
        break;
    case FUSION_GATING:
        gating_backward(dx, dups, g, c, dout, x, ups, f, M);
        break;
    }
}

double fusion_reg_forward(const fusion *f) {
    if (!f->value_w) return 0;
    int H = f->cfg.H;
    double s = 0;
    for (int r = 0; r < H; r++)
        for (int k = 0; k < H; k++) {
            double d = (r == k ? 1.0 : 0.0) - f->value_w[r * H + k];
            s += d * d;
        }
    return FUSION_REG_COEF * s;
}

void fusion_reg_backward(fusion *g, const fusion *f, float scale) {
    if (!f->value_w || !g || !g->value_w) return;
    int H = f->cfg.H;
    for (int r = 0; r < H; r++)
        for (int k = 0; k < H; k++)
            g->value_w[r * H + k] += scale * (float)(2 * FUSION_REG_COEF) *
                                     (f->value_w[r * H + k] - (r == k ? 1.0f : 0.0f));
}
