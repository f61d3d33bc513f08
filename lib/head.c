/* head.c: the task head (classification, regression, multi-label) and its losses; see head.h. */
#include "head.h"

#include <math.h>
#include <string.h>

#include "ops.h"

const char *head_kind_name(int kind) {
    return kind == HEAD_REGRESSION   ? "regression"
           : kind == HEAD_MULTILABEL ? "multilabel"
                                     : "classification";
}

int head_kind_parse(const char *name) {
    for (int k = HEAD_CLASSIFICATION; k <= HEAD_MULTILABEL; k++)
        if (!strcmp(name, head_kind_name(k))) return k;
    return -1;
}

size_t head_nparams(int H, int L) {
    return (size_t)H * H + H + (size_t)L * H + L;
}

int head_params(param_desc out[HEAD_NPARAMS], int H, int L) {
    size_t HH = (size_t)H * H, LH = (size_t)L * H;
    out[0] = (param_desc){"1.weight", 2, {H, H}, 0, HH, 1, 1};
    out[1] = (param_desc){"1.bias", 1, {H, 0}, HH, H, 0, 1};
    out[2] = (param_desc){"4.weight", 2, {L, H}, HH + H, LH, 1, 1};
    out[3] = (param_desc){"4.bias", 1, {L, 0}, HH + H + LH, L, 0, 1};
    return HEAD_NPARAMS;
}

void head_carve(head *hd, float *buf, int H, int L, float dropout) {
    param_desc p[HEAD_NPARAMS];
    head_params(p, H, L);
    *hd = (head){
        H, L, dropout, buf + p[0].offset, buf + p[1].offset, buf + p[2].offset, buf + p[3].offset};
}

void head_init(head *hd, af_rng *rng) {
    for (size_t i = 0; i < (size_t)hd->H * hd->H; i++) hd->w1[i] = 0.02f * af_rng_normal(rng);
    for (size_t i = 0; i < (size_t)hd->L * hd->H; i++) hd->w4[i] = 0.02f * af_rng_normal(rng);
    memset(hd->b1, 0, hd->H * sizeof(float));
    memset(hd->b4, 0, hd->L * sizeof(float));
}

size_t head_cache_floats(int H, int B) {
    size_t n = (size_t)B * H;
    return 5 * n + 2 * ((n + 3) / 4);
}

void head_cache_carve(head_cache *c, float *mem, int H, int B) {
    size_t n = (size_t)B * H, nm = (n + 3) / 4;
    *c = (head_cache){B,
                      0,
                      mem,
                      mem + n,
                      mem + 2 * n,
                      mem + 3 * n,
                      mem + 4 * n,
                      (uint8_t *)(mem + 5 * n),
                      (uint8_t *)(mem + 5 * n + nm)};
}

void head_forward(float *logits, head_cache *c, const float *cls, int ld, const head *hd, int B,
                  af_rng *rng) {
    int H = hd->H;
    size_t n = (size_t)B * H;
    c->dropped = rng && hd->dropout > 0;
    for (int b = 0; b < B; b++)
        memcpy(c->x0 + (size_t)b * H, cls + (size_t)b * ld, H * sizeof(float));
    /* z lives in dz until backward needs the space: tanh' is computed from t */
    if (c->dropped) dropout_forward(c->x0, c->mask0, c->x0, n, hd->dropout, rng);
    linear_forward(c->dz, c->x0, hd->w1, hd->b1, B, H, H);
    act_forward(c->t, c->dz, n, AF_ACT_TANH);
    dropout_forward(c->t0, c->dropped ? c->mask1 : NULL, c->t, n, hd->dropout, rng);
    linear_forward(logits, c->t0, hd->w4, hd->b4, B, H, hd->L);
}

void head_backward(float *dcls, int ld, head *g, head_cache *c, const float *dlogits,
                   const head *hd, int B) {
    int H = hd->H;
    size_t n = (size_t)B * H;
    float p = hd->dropout;
    memset(c->dt0, 0, n * sizeof(float));
    linear_backward(c->dt0, g ? g->w4 : NULL, g ? g->b4 : NULL, dlogits, c->t0, hd->w4, B, H,
                    hd->L);
    /* dz = dropout'(dt0)·(1 − t²) */
    memset(c->dz, 0, n * sizeof(float));
    dropout_backward(c->dz, c->dt0, c->dropped ? c->mask1 : NULL, n, p);
    for (size_t i = 0; i < n; i++) c->dz[i] *= 1.0f - c->t[i] * c->t[i];
    if (!dcls && !g) return;
    memset(c->dt0, 0, n * sizeof(float)); /* reused: d(x0) */
    linear_backward(dcls ? c->dt0 : NULL, g ? g->w1 : NULL, g ? g->b1 : NULL, c->dz, c->x0, hd->w1,
                    B, H, H);
    if (!dcls) return;
    for (int b = 0; b < B; b++)
        dropout_backward(dcls + (size_t)b * ld, c->dt0 + (size_t)b * H,
                         c->dropped ? c->mask0 + (size_t)b * H : NULL, H, p);
}

double head_ce_forward(float *probs, const float *logits, const int *labels, int B, int L) {
    double loss = 0;
    softmax_forward(probs, logits, B, L);
    for (int b = 0; b < B; b++) {
        /* log p from the logits, not log(probs), so a saturated softmax still gives a finite,
         * exact loss */
        const float *z = logits + (size_t)b * L;
        double mx = z[0], s = 0;
        for (int j = 1; j < L; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < L; j++) s += exp(z[j] - mx);
        loss += mx + log(s) - z[labels[b]];
    }
    return loss / B;
}

void head_ce_backward(float *dlogits, const float *probs, const int *labels, int B, int L) {
    float inv = 1.0f / B;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++)
            dlogits[(size_t)b * L + j] +=
                (probs[(size_t)b * L + j] - (j == labels[b] ? 1.0f : 0.0f)) * inv;
}

double head_mse_forward(const float *pred, const float *target, int B) {
    double s = 0;
    for (int b = 0; b < B; b++) {
        double d = (double)pred[b] - target[b];
        s += d * d;
    }
    return s / B;
}

void head_mse_backward(float *dpred, const float *pred, const float *target, int B) {
    for (int b = 0; b < B; b++) dpred[b] += 2.0f * (pred[b] - target[b]) / B;
}

void head_sigmoid_forward(float *probs, const float *logits, int B, int L) {
    for (size_t i = 0; i < (size_t)B * L; i++) {
        /* e^−|z| never overflows */
        double z = logits[i], t = exp(-fabs(z));
        probs[i] = (float)(z >= 0 ? 1 / (1 + t) : t / (1 + t));
    }
}

void head_multilabel_predict(float *pred, const float *probs, int L) {
    for (int j = 0; j < L; j++) pred[j] = probs[j] > 0.5f ? 1.0f : 0.0f;
}

double head_bce_forward(float *probs, const float *logits, const float *targets, int B, int L) {
    double loss = 0;
    size_t n = (size_t)B * L;
    head_sigmoid_forward(probs, logits, B, L);
    /* max(z, 0) − z·y + log(1 + e^−|z|): PyTorch's stable form, finite for any z */
    for (size_t i = 0; i < n; i++) {
        double z = logits[i];
        loss += (z > 0 ? z : 0) - z * targets[i] + log1p(exp(-fabs(z)));
    }
    return n ? loss / (double)n : 0;
}

void head_bce_backward(float *dlogits, const float *probs, const float *targets, int B, int L) {
    size_t n = (size_t)B * L;
    float inv = 1.0f / (float)n;
    for (size_t i = 0; i < n; i++) dlogits[i] += (probs[i] - targets[i]) * inv;
}
