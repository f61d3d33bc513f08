/* fusion_attention.c: the attention fusion of the paper (AdapterHub's dynamic fusion) and its
 * static variant without the value matrix; the arithmetic and its exactness are in fusion.h. */
#include <cblas.h>
#include <stddef.h>
#include <string.h>

#include "fusion_method.h"
#include "ops.h"

/* The per-token loops run over tokens in parallel (af_parallel): tokens are independent. */
typedef struct {
    float *s, *du, *dc, *dups;
    const float *p, *ups, *dmix, *q, *u, *kb;
    const uint8_t *mask; /* the scores' dropout mask (NULL: none) */
    float T, scale;      /* temperature; 1/(1 − dropout) */
    int N, H;
} tok_job;

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

static const fusion_param_spec attention_params[] = {
    {"query.weight", FD_H, FD_H, 1, FP_TRAIN, offsetof(fusion, query_w)},
    {"query.bias", FD_H, FD_NONE, 0, FP_TRAIN, offsetof(fusion, query_b)},
    {"key.weight", FD_H, FD_H, 1, FP_TRAIN, offsetof(fusion, key_w)},
    {"key.bias", FD_H, FD_NONE, 0, FP_TRAIN, offsetof(fusion, key_b)},
    {"value.weight", FD_H, FD_H, 1, FP_TRAIN, offsetof(fusion, value_w)},
};

static void init(fusion *f, af_rng *rng) {
    size_t H = f->cfg.H;
    fusion_normal(f->query_w, H * H, rng), memset(f->query_b, 0, H * sizeof(float));
    fusion_normal(f->key_w, H * H, rng), memset(f->key_b, 0, H * sizeof(float));
    if (f->value_w) /* the identity, with 1e-6 elsewhere (AdapterHub's value_initialized) */
        for (size_t r = 0; r < H; r++)
            for (size_t c = 0; c < H; c++) f->value_w[r * H + c] = r == c ? 1.0f : 1e-6f;
}

static void layout(fusion_layout *L, const fusion_config *cfg, int M, int value) {
    size_t H = cfg->H, N = cfg->N, mm = M;
    fusion_cache *c = L->c;
    c->u = fusion_take(L, mm * H);
    fusion_take_mask(L, mm * N);
    /* kept unless shared: shared, the backward computes q from x again (one product, for the
     * M·H floats it would keep) and q and the mix take the places of the backward's dmix and du
     * (qk_backward: each is read before the other is written) */
    if (!L->shared) {
        c->q = fusion_take(L, mm * H);
        if (value) c->mix = fusion_take(L, mm * H);
    }
    /* the backward's temporaries (qk_backward): dmix (then dq), du, dc */
    c->scratch = fusion_take_scratch(L, 2 * mm * H + mm);
    if (L->shared) {
        c->q = c->scratch;
        if (value) c->mix = c->scratch + mm * H;
    }
}

static void attention_layout(fusion_layout *L, const fusion_config *cfg, int M) {
    layout(L, cfg, M, 1);
}

static void static_layout(fusion_layout *L, const fusion_config *cfg, int M) {
    layout(L, cfg, M, 0);
}

/* ---- forward and backward ---- */

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
    if (f->value_w) { /* attention; static has no value matrix */
        /* Σ p_i·Wv·up_i = Wv·Σ p_i·up_i: one value product per token */
        fusion_mix_forward(c->mix, c->p, ups, M, N, H);
        linear_forward(o, c->mix, f->value_w, NULL, M, H, H);
    } else {
        fusion_mix_forward(o, c->p, ups, M, N, H);
    }
}

static void qk_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                        const float *x, const float *ups, const fusion *f, int M) {
    int H = f->cfg.H, N = f->cfg.N;
    size_t MH = (size_t)M * H;
    /* qk_bwd_part is dmix's last reader: then (shared) q, computed again, takes its place, and
     * dq once q is read */
    float *dmix = c->scratch, *du = dmix + MH, *dq = dmix, *dc = du + MH;
    if (f->value_w) { /* attention; static has no value matrix */
        /* Σ p_i up_i again: a shared cache lets other fusion layers overwrite it */
        if (g) fusion_mix_forward(c->mix, c->p, ups, M, N, H);
        linear_backward_set(dmix, dout, f->value_w, M, H, H);
        if (g) linear_backward(NULL, g->value_w, NULL, dout, c->mix, f->value_w, M, H, H);
    } else {
        memcpy(dmix, dout, MH * sizeof(float));
    }
    tok_job bj = {.du = du,
                  .dups = dups,
                  .dc = dc,
                  .dmix = dmix,
                  .p = c->p,
                  .ups = ups,
                  .u = c->u,
                  .mask = c->dropped && f->cfg.dropout > 0 ? c->mask : NULL,
                  .T = c->T,
                  .scale = 1.0f / (1.0f - f->cfg.dropout),
                  .N = N,
                  .H = H};
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

/* ---- the value regulariser ---- */

static double value_reg_forward(const fusion *f) {
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

static void value_reg_backward(fusion *g, const fusion *f, float scale) {
    if (!f->value_w || !g || !g->value_w) return;
    int H = f->cfg.H;
    for (int r = 0; r < H; r++)
        for (int k = 0; k < H; k++)
            g->value_w[r * H + k] += scale * (float)(2 * FUSION_REG_COEF) *
                                     (f->value_w[r * H + k] - (r == k ? 1.0f : 0.0f));
}

const fusion_method_ops fusion_attention_ops = {
    .name = "attention",
    .params = attention_params,
    .nparams = 5,
    .uses_x = 1,
    .dropout = 1,
    .init = init,
    .layout = attention_layout,
    .forward = qk_forward,
    .backward = qk_backward,
    .reg_forward = value_reg_forward,
    .reg_backward = value_reg_backward,
};

/* static: the same rows without value.weight */
const fusion_method_ops fusion_static_ops = {
    .name = "static",
    .params = attention_params,
    .nparams = 4,
    .uses_x = 1,
    .dropout = 1,
    .init = init,
    .layout = static_layout,
    .forward = qk_forward,
    .backward = qk_backward,
};
