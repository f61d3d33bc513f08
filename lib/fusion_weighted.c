/* fusion_weighted.c: one learned weight per adapter and site, softmax-normalised (static: the
 * same for every token, so a file's weights can be read without running the model). */
#include <stddef.h>
#include <string.h>

#include "fusion_method.h"
#include "ops.h"

static const fusion_param_spec params[] = {
    {"weights", FD_N, FD_NONE, 1, FP_TRAIN_UNLESS_FIXED, offsetof(fusion, weights)},
};

static const char *const options[] = {"fixed_weights", NULL};

static void init(fusion *f, af_rng *rng) {
    memset(f->weights, 0, f->cfg.N * sizeof(float)); /* softmax(0) = uniform */
}

static void layout(fusion_layout *L, const fusion_config *cfg, int M) {
    L->c->sw = fusion_take(L, cfg->N);
    L->c->scratch = fusion_take_scratch(L, cfg->N);
}

static void static_weights(float *w, const fusion *f) {
    softmax_forward(w, f->weights, 1, f->cfg.N);
}

static void forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng) {
    int N = f->cfg.N;
    static_weights(c->sw, f);
    for (int m = 0; m < M; m++) memcpy(c->p + (size_t)m * N, c->sw, N * sizeof(float));
    fusion_mix_forward(o, c->p, ups, M, N, f->cfg.H);
}

static void backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M) {
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

static void to_json(cJSON *j, const fusion_config *cfg) {
    cJSON_AddNumberToObject(j, "fixed_weights", cfg->fixed);
}

static int from_json(fusion_config *cfg, const cJSON *j, af_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "fixed_weights");
    cfg->fixed = cJSON_IsNumber(v) ? v->valueint : 0;
    return 0;
}

const fusion_method_ops fusion_weighted_ops = {
    .name = "weighted",
    .params = params,
    .options = options,
    .nparams = 1,
    .uses_x = 0,
    .dropout = 0,
    .init = init,
    .layout = layout,
    .forward = forward,
    .backward = backward,
    .static_weights = static_weights,
    .to_json = to_json,
    .from_json = from_json,
};
