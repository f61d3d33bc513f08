/* fusion_multihead.c: multi-head self-attention among the adapters' outputs of a token (af's own
 * method; nn.MultiheadAttention's names and arithmetic, see fusion.h). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fusion_method.h"
#include "ops.h"

static const fusion_param_spec params[] = {
    {"in_proj_weight", FD_3H, FD_H, 1, FP_TRAIN, offsetof(fusion, in_w)},
    {"in_proj_bias", FD_3H, FD_NONE, 0, FP_TRAIN, offsetof(fusion, in_b)},
    {"out_proj.weight", FD_H, FD_H, 1, FP_TRAIN, offsetof(fusion, out_w)},
    {"out_proj.bias", FD_H, FD_NONE, 0, FP_TRAIN, offsetof(fusion, out_b)},
};

static int check(const fusion_config *cfg, af_err *e) {
    if (cfg->heads < 1 || cfg->H % cfg->heads)
        return af_errf(e, "fusion: multihead: heads dividing hidden size %d expected, %d found",
                       cfg->H, cfg->heads);
    return 0;
}

static const char *const options[] = {"heads", NULL};

static void init(fusion *f, af_rng *rng) {
    size_t H = f->cfg.H;
    fusion_normal(f->in_w, 3 * H * H, rng), memset(f->in_b, 0, 3 * H * sizeof(float));
    fusion_normal(f->out_w, H * H, rng), memset(f->out_b, 0, H * sizeof(float));
}

static void layout(fusion_layout *L, const fusion_config *cfg, int M) {
    size_t H = cfg->H, N = cfg->N, mm = M;
    fusion_cache *c = L->c;
    c->qkv = fusion_take(L, mm * N * 3 * H);
    c->att = fusion_take(L, mm * cfg->heads * N * N);
    c->mix = fusion_take(L, mm * H);
    fusion_take_mask(L, mm * cfg->heads * N * N);
    c->scratch = fusion_take_scratch(L, mm * N * 3 * H + mm * H + 3 * N * N + N);
}

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

static void forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng) {
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

static void backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M) {
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

static void to_json(cJSON *j, const fusion_config *cfg) {
    cJSON_AddNumberToObject(j, "heads", cfg->heads);
}

static int from_json(fusion_config *cfg, const cJSON *j, af_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "heads");
    cfg->heads = cJSON_IsNumber(v) ? v->valueint : 1;
    return 0;
}

const fusion_method_ops fusion_multihead_ops = {
    .name = "multihead",
    .params = params,
    .options = options,
    .nparams = 4,
    .uses_x = 0,
    .dropout = 1,
    .check = check,
    .init = init,
    .layout = layout,
    .forward = forward,
    .backward = backward,
    .to_json = to_json,
    .from_json = from_json,
};
