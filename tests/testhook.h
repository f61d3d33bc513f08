/* testhook.h: a deterministic adapter-site hook for the encoder tests, out = LN(h + r + c·h²) with
 * the site's own LayerNorm (c = 0.5 in the PyTorch fixtures, c = 0 gives the default site exactly).
 * It records, per (layer, site), the dout it was given and the dh, dr it produced. */
#ifndef TESTHOOK_H
#define TESTHOOK_H

#include "bert.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#define TH_MAXL 8

typedef struct {
    int on[TH_MAXL][BERT_NSITES];
    float c;
    int H, calls_fwd, calls_bwd;
    /* per site: z = h + r + c h² (M, H), LN statistics (M), and what backward saw and produced */
    float *z[TH_MAXL][BERT_NSITES], *mean[TH_MAXL][BERT_NSITES], *rstd[TH_MAXL][BERT_NSITES];
    float *dout[TH_MAXL][BERT_NSITES], *dh[TH_MAXL][BERT_NSITES], *dr[TH_MAXL][BERT_NSITES];
    float *tmp;
} testhook;

static int th_active(void *ctx, int l, int s) {
    testhook *t = ctx;
    return l < TH_MAXL && t->on[l][s];
}

static void th_forward(void *ctx, int l, int s, int slot, float *out, const float *h,
                       const float *r, const float *ln_w, const float *ln_b, float eps, int M) {
    testhook *t = ctx;
    size_t n = (size_t)M * t->H;
    float *z = t->z[l][s];
    /* r == NULL: h is h + r (sum_only, when c == 0) */
    for (size_t i = 0; i < n; i++) z[i] = (r ? h[i] + r[i] : h[i]) + t->c * h[i] * h[i];
    layernorm_forward(out, t->mean[l][s], t->rstd[l][s], z, ln_w, ln_b, M, t->H, eps);
    t->calls_fwd++;
}

static void th_backward(void *ctx, int l, int s, float *dh, float *dr, const float *dout,
                        const float *h, const float *r, const float *ln_w, const float *ln_b,
                        float eps, int M) {
    testhook *t = ctx;
    size_t n = (size_t)M * t->H;
    memset(t->tmp, 0, n * sizeof(float));
    layernorm_backward(t->tmp, NULL, NULL, dout, t->z[l][s], ln_w, t->mean[l][s], t->rstd[l][s], M,
                       t->H);
    memcpy(t->dout[l][s], dout, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float gh = t->tmp[i] * (1.0f + 2.0f * t->c * h[i]);
        t->dh[l][s][i] = gh;
        t->dr[l][s][i] = t->tmp[i];
        dh[i] = gh; /* hooks set their gradients */
        dr[i] = t->tmp[i];
    }
    t->calls_bwd++;
}

/* Buffers for up to M tokens of width H at every site. */
static void th_init(testhook *t, int L, int H, int M, float c) {
    memset(t, 0, sizeof *t);
    t->c = c, t->H = H;
    size_t n = (size_t)M * H;
    for (int l = 0; l < L && l < TH_MAXL; l++)
        for (int s = 0; s < BERT_NSITES; s++) {
            t->z[l][s] = calloc(n, sizeof(float));
            t->dout[l][s] = calloc(n, sizeof(float));
            t->dh[l][s] = calloc(n, sizeof(float));
            t->dr[l][s] = calloc(n, sizeof(float));
            t->mean[l][s] = calloc(M, sizeof(float));
            t->rstd[l][s] = calloc(M, sizeof(float));
        }
    t->tmp = calloc(n, sizeof(float));
}

static void th_free(testhook *t) {
    for (int l = 0; l < TH_MAXL; l++)
        for (int s = 0; s < BERT_NSITES; s++) {
            free(t->z[l][s]), free(t->dout[l][s]), free(t->dh[l][s]), free(t->dr[l][s]);
            free(t->mean[l][s]), free(t->rstd[l][s]);
        }
    free(t->tmp);
}

static bert_hooks th_hooks(testhook *t) {
    bert_hooks h = {t, th_active, th_forward, th_backward, t->c == 0, 1};
    return h;
}

#endif
