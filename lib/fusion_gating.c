/* fusion_gating.c: an input-dependent gate over the adapters: a small network on the query input
 * x gives each adapter a sigmoid (or softmax) weight per token. */
#include <stddef.h>
#include <string.h>

#include "fusion_method.h"
#include "ops.h"

static const fusion_param_spec params[] = {
    {"gate.0.weight", FD_H2, FD_H, 1, FP_TRAIN, offsetof(fusion, gate0_w)},
    {"gate.0.bias", FD_H2, FD_NONE, 0, FP_TRAIN, offsetof(fusion, gate0_b)},
    {"gate.3.weight", FD_N, FD_H2, 1, FP_TRAIN, offsetof(fusion, gate3_w)},
    {"gate.3.bias", FD_N, FD_NONE, 0, FP_TRAIN, offsetof(fusion, gate3_b)},
};

static const char *const options[] = {"gate", NULL};

static void init(fusion *f, af_rng *rng) {
    size_t H = f->cfg.H, N = f->cfg.N, H2 = f->cfg.H / 2;
    fusion_normal(f->gate0_w, H2 * H, rng), memset(f->gate0_b, 0, H2 * sizeof(float));
    fusion_normal(f->gate3_w, N * H2, rng), memset(f->gate3_b, 0, N * sizeof(float));
}

static void layout(fusion_layout *L, const fusion_config *cfg, int M) {
    size_t N = cfg->N, H2 = cfg->H / 2, mm = M;
    fusion_cache *c = L->c;
    c->z1 = fusion_take(L, mm * H2);
    c->h1 = fusion_take(L, mm * H2);
    c->hd = fusion_take(L, mm * H2);
    fusion_take_mask(L, mm * H2);
    c->scratch = fusion_take_scratch(L, 2 * mm * N + 3 * mm * H2);
}

static void forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng) {
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
    fusion_mix_forward(o, c->p, ups, M, N, H);
}

static void backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M) {
    int H = f->cfg.H, N = f->cfg.N, H2 = H / 2;
    size_t n2 = (size_t)M * H2, MN = (size_t)M * N;
    float *dp = c->scratch, *dz2 = dp + MN, *dhd = dz2 + MN, *dh1 = dhd + n2, *dz1 = dh1 + n2;
    fusion_mix_backward(dp, dups, dout, c->p, ups, M, N, H);
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

static void to_json(cJSON *j, const fusion_config *cfg) {
    cJSON_AddStringToObject(j, "gate", cfg->gate_softmax ? "softmax" : "sigmoid");
}

static int from_json(fusion_config *cfg, const cJSON *j, af_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "gate");
    cfg->gate_softmax = cJSON_IsString(v) && !strcmp(v->valuestring, "softmax");
    return 0;
}

const fusion_method_ops fusion_gating_ops = {
    .name = "gating",
    .params = params,
    .options = options,
    .nparams = 4,
    .uses_x = 1,
    .dropout = 1,
    .init = init,
    .layout = layout,
    .forward = forward,
    .backward = backward,
    .to_json = to_json,
    .from_json = from_json,
};
