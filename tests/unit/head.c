/* head.c: the task head: forward against the literal definition, backward through the losses
 * (cross-entropy, MSE, binary cross-entropy) by finite differences (with dropout masks fixed),
 * the losses against hand computations. */
#include "head.h"

#include <stdlib.h>

#include "kgrad.h"
#include "ops.h"
#include "tap.h"

enum { H = 16, B = 5, S = 3 };

typedef struct {
    head *hd;
    head_cache c;
    const float *hidden; /* (B·S, H): the head reads row 0 of each sequence */
    float *logits, *probs;
    const int *labels;
    const float *targets; /* regression: [B]; multi-label: [B, L] of 0/1 */
    int kind, train;
} fixture;

static double loss(void *ctx) {
    fixture *f = ctx;
    af_rng r;
    af_rng_seed(&r, 99);
    head_forward(f->logits, &f->c, f->hidden, S * H, f->hd, B, f->train ? &r : NULL);
    if (f->kind == HEAD_REGRESSION) return head_mse_forward(f->logits, f->targets, B);
    if (f->kind == HEAD_MULTILABEL)
        return head_bce_forward(f->probs, f->logits, f->targets, B, f->hd->L);
    return head_ce_forward(f->probs, f->logits, f->labels, B, f->hd->L);
}

static void check(const char *name, int kind, int L, int train, af_rng *rng) {
    char what[128];
    size_t np = head_nparams(H, L);
    float *buf = malloc(sizeof(float) * np), *gbuf = calloc(np, sizeof(float));
    head hd, g;
    head_carve(&hd, buf, H, L, train ? 0.3f : 0.0f);
    head_carve(&g, gbuf, H, L, hd.dropout);
    kg_fill(buf, np, rng, 0.3f);
    float hidden[B * S * H], logits[B * 8], probs[B * 8], targets[B * 8];
    int labels[B];
    kg_fill(hidden, B * S * H, rng, 1.0f);
    kg_fill(targets, B, rng, 1.0f);
    if (kind == HEAD_MULTILABEL)
        for (int i = 0; i < B * L; i++) targets[i] = (float)af_rng_below(rng, 2);
    for (int b = 0; b < B; b++) labels[b] = (int)af_rng_below(rng, L);
    float *mem = malloc(sizeof(float) * head_cache_floats(H, B));
    fixture f = {&hd, {0}, hidden, logits, probs, labels, targets, kind, train};
    head_cache_carve(&f.c, mem, H, B);
    loss(&f);

    /* literal: logits = W4·drop(tanh(W1·drop(cls) + b1)) + b4, masks from the cache */
    double worst = 0, keep = 1.0 / (1.0 - hd.dropout);
    for (int b = 0; b < B; b++) {
        double t[H];
        for (int i = 0; i < H; i++) {
            double s = hd.b1[i];
            for (int j = 0; j < H; j++) {
                double xj = hidden[b * S * H + j];
                if (f.c.dropped) xj = f.c.mask0[b * H + j] ? xj * keep : 0;
                s += hd.w1[i * H + j] * xj;
            }
            t[i] = tanh(s);
            if (f.c.dropped) t[i] = f.c.mask1[b * H + i] ? t[i] * keep : 0;
        }
        for (int k = 0; k < L; k++) {
            double s = hd.b4[k];
            for (int i = 0; i < H; i++) s += hd.w4[k * H + i] * t[i];
            worst = fmax(worst, fabs(s - logits[b * L + k]));
        }
    }
    ok(worst < 1e-5, "%s: logits equal the literal definition (max diff %.1e)", name, worst);

    float dlogits[B * 8] = {0}, dhidden[B * S * H] = {0};
    if (kind == HEAD_REGRESSION)
        head_mse_backward(dlogits, logits, targets, B);
    else if (kind == HEAD_MULTILABEL)
        head_bce_backward(dlogits, probs, targets, B, L);
    else
        head_ce_backward(dlogits, probs, labels, B, L);
    head_backward(dhidden, S * H, &g, &f.c, dlogits, &hd, B);
    int only_cls = 1;
    for (int b = 0; b < B; b++)
        for (int s = 1; s < S; s++)
            for (int j = 0; j < H; j++) only_cls &= dhidden[(b * S + s) * H + j] == 0;
    ok(only_cls, "%s: only the [CLS] rows receive gradient", name);
    snprintf(what, sizeof what, "%s: dcls", name);
    kg_check(what, loss, &f, (float *)hidden, dhidden, B * S * H, 1e-3f, 1e-2);
    param_desc p[HEAD_NPARAMS];
    head_params(p, H, L);
    for (int i = 0; i < HEAD_NPARAMS; i++) {
        snprintf(what, sizeof what, "%s: %s", name, p[i].name);
        kg_check(what, loss, &f, buf + p[i].offset, gbuf + p[i].offset, p[i].numel, 1e-3f, 1e-2);
    }
    free(buf), free(gbuf), free(mem);
}

int main(void) {
    af_rng rng;
    af_rng_seed(&rng, 3);

    param_desc p[HEAD_NPARAMS];
    head_params(p, 768, 3);
    ok(!strcmp(p[0].name, "1.weight") && !strcmp(p[1].name, "1.bias") &&
           !strcmp(p[2].name, "4.weight") && p[2].shape[0] == 3 && p[2].shape[1] == 768 &&
           !strcmp(p[3].name, "4.bias") && p[3].offset + 3 == head_nparams(768, 3),
       "parameter table: AdapterHub's nn.Sequential indices");

    /* cross-entropy and MSE by hand */
    {
        float logits[4] = {1, 2, 3, -1}, probs[4];
        int labels[2] = {1, 0};
        double l = head_ce_forward(probs, logits, labels, 2, 2);
        double want = (-(2 - log(exp(1) + exp(2))) - (3 - log(exp(3) + exp(-1)))) / 2;
        ok(fabs(l - want) < 1e-6, "cross-entropy: mean of −log p[label] (%.6f, %.6f)", l, want);
        float big[2] = {1000, -1000};
        int lab = 1;
        l = head_ce_forward(probs, big, &lab, 1, 2);
        ok(isfinite(l) && fabs(l - 2000) < 1e-3, "cross-entropy: finite when saturated (%g)", l);
        float pred[2] = {1, 2}, tgt[2] = {0.5f, 4}, d[2] = {0};
        ok(fabs(head_mse_forward(pred, tgt, 2) - (0.25 + 4) / 2) < 1e-7, "mse: mean square");
        head_mse_backward(d, pred, tgt, 2);
        ok(fabs(d[0] - 0.5) < 1e-7 && fabs(d[1] + 2) < 1e-7, "mse: gradient 2·(pred − target)/B");
    }

    /* binary cross-entropy by hand: −[y log σ(z) + (1 − y) log(1 − σ(z))], mean over B·L */
    {
        float z[4] = {0.5f, -2, 3, 0}, y[4] = {1, 0, 0, 1}, p[4], d[4] = {0};
        double want = 0;
        for (int i = 0; i < 4; i++) {
            double s = 1 / (1 + exp(-z[i]));
            want -= y[i] ? log(s) : log(1 - s);
        }
        want /= 4;
        double l = head_bce_forward(p, z, y, 2, 2);
        ok(fabs(l - want) < 1e-7 && fabs(p[0] - 1 / (1 + exp(-0.5))) < 1e-7 && p[3] == 0.5f,
           "binary cross-entropy: the mean over all B·L entries (%.7f, %.7f); probs σ(z)", l, want);
        head_bce_backward(d, p, y, 2, 2);
        ok(fabs(d[1] - p[1] / 4) < 1e-8 && fabs(d[0] - (p[0] - 1) / 4) < 1e-8,
           "binary cross-entropy: gradient (σ(z) − y)/(B·L)");
        float big[2] = {200, -200}, t2[2] = {0, 1}, p2[2];
        l = head_bce_forward(p2, big, t2, 1, 2);
        ok(isfinite(l) && fabs(l - 200) < 1e-3 && p2[0] == 1 && p2[1] == 0,
           "binary cross-entropy: finite when saturated (%g)", l);
        float pr[3] = {0.5f, 0.51f, 0.9f}, pred[3];
        head_multilabel_predict(pred, pr, 3);
        ok(pred[0] == 0 && pred[1] == 1 && pred[2] == 1, "multi-label decision: σ(z) > 0.5");
        ok(head_kind_parse("multilabel") == HEAD_MULTILABEL &&
               head_kind_parse("regression") == HEAD_REGRESSION &&
               head_kind_parse("classification") == HEAD_CLASSIFICATION &&
               head_kind_parse("multi") == -1 &&
               !strcmp(head_kind_name(HEAD_MULTILABEL), "multilabel"),
           "head kinds by name and back");
    }

    /* init */
    {
        float *buf = malloc(sizeof(float) * head_nparams(768, 2));
        head hd;
        head_carve(&hd, buf, 768, 2, 0.1f);
        head_init(&hd, &rng);
        double s2 = 0;
        for (int i = 0; i < 768 * 768; i++) s2 += (double)hd.w1[i] * hd.w1[i];
        int zero = hd.b4[0] == 0 && hd.b4[1] == 0;
        for (int i = 0; i < 768; i++) zero &= hd.b1[i] == 0;
        ok(fabs(sqrt(s2 / (768 * 768)) - 0.02) < 5e-4 && zero, "init: N(0, 0.02), zero biases");
        free(buf);
    }

    check("classification", HEAD_CLASSIFICATION, 3, 0, &rng);
    check("classification dropout", HEAD_CLASSIFICATION, 4, 1, &rng);
    check("regression", HEAD_REGRESSION, 1, 0, &rng);
    check("regression dropout", HEAD_REGRESSION, 1, 1, &rng);
    check("multi-label", HEAD_MULTILABEL, 4, 0, &rng);
    check("multi-label dropout", HEAD_MULTILABEL, 3, 1, &rng);
    check("multi-label, one label", HEAD_MULTILABEL, 1, 0, &rng);
    return done_testing();
}
