/* kernels.c: adapter, fusion, head and site kernels against the PyTorch fixtures of
 * scripts/gen-kernel-fixtures.py (tests/fixtures/kernels/): outputs within 1e-4 absolute,
 * gradients within 1e-3 relative (L2 over the tensor). A gradient that is zero in exact
 * arithmetic (attention's key.bias without dropout) is measured against a floor of 1e-2 instead
 * of its own norm, i.e. it must be below 1e-5 in absolute L2. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "fusion.h"
#include "head.h"
#include "ops.h"
#include "safetensors.h"
#include "site.h"
#include "kfixture.h"

/* ---- adapter ----------------------------------------------------------------------------- */

static void adapter_case(const char *name) {
    if (!open_fixture(name)) return;
    int H = meta_int("H"), M = meta_int("M"), r = meta_int("r");
    int act = act_parse(meta("act"));
    size_t np = adapter_nparams(H, r);
    float *w = malloc(np * sizeof(float)), *g = calloc(np, sizeof(float));
    adapter a, ga;
    adapter_carve(&a, w, H, r, act);
    adapter_carve(&ga, g, H, r, act);
    param_desc p[ADAPTER_NPARAMS];
    adapter_params(p, H, r);
    for (int i = 0; i < ADAPTER_NPARAMS; i++)
        load(w + p[i].offset, p[i].numel, "param.%s", p[i].name);
    float *x = fetch((size_t)M * H, "x"), *dout = fetch((size_t)M * H, "dout");
    float *up = malloc(sizeof(float) * M * H), *dx = calloc((size_t)M * H, sizeof(float));
    float *mem = malloc(sizeof(float) * adapter_cache_floats(&a, 1, M));
    adapter_cache c;
    adapter_cache_carve(&c, mem, &a, 1, M);
    adapter_forward(up, &c, x, &a, M);
    cmp_out("out", up, (size_t)M * H);
    adapter_backward(dx, &ga, &c, dout, x, &a, M);
    cmp_grad(dx, (size_t)M * H, "grad.x");
    for (int i = 0; i < ADAPTER_NPARAMS; i++)
        cmp_grad(g + p[i].offset, p[i].numel, "grad.param.%s", p[i].name);
    free(w), free(g), free(x), free(dout), free(up), free(dx), free(mem);
    st_close(&F);
}

/* ---- fusion ------------------------------------------------------------------------------ */

static fusion_config fixture_fusion_config(int H, int N) {
    fusion_config cfg = {.method = fusion_method_parse(meta("method")), .H = H, .N = N};
    cfg.heads = meta_int("heads");
    const char *gs = st_meta_get(&F, "gate_softmax");
    cfg.gate_softmax = gs ? atoi(gs) : 0;
    return cfg;
}

/* Loads the parameters of a fusion (names prefixed by pre) into a fresh buffer. */
static float *load_fusion(fusion *f, fusion *g, float **gbuf, const fusion_config *cfg,
                          const char *pre) {
    size_t np = fusion_nparams(cfg);
    float *w = malloc(np * sizeof(float));
    *gbuf = calloc(np, sizeof(float));
    fusion_carve(f, cfg, w);
    fusion_carve(g, cfg, *gbuf);
    param_desc p[fusion_param_count(cfg)];
    int n = fusion_params(p, cfg);
    for (int i = 0; i < n; i++) load(w + p[i].offset, p[i].numel, "%s%s", pre, p[i].name);
    return w;
}

static void cmp_fusion_grads(const float *gbuf, const fusion_config *cfg, const char *pre) {
    param_desc p[fusion_param_count(cfg)];
    int n = fusion_params(p, cfg);
    for (int i = 0; i < n; i++)
        cmp_grad(gbuf + p[i].offset, p[i].numel, "grad.%s%s", pre, p[i].name);
}

static void fusion_case(const char *name) {
    if (!open_fixture(name)) return;
    int H = meta_int("H"), M = meta_int("M"), N = meta_int("N");
    float T = meta_float("T");
    fusion_config cfg = fixture_fusion_config(H, N);
    af_err e;
    if (!ok(fusion_config_check(&cfg, &e) == 0, "%s: config", name)) diag("%s", e.msg);
    fusion f, g;
    float *gbuf, *w = load_fusion(&f, &g, &gbuf, &cfg, "param.");
    float *x = fetch((size_t)M * H, "x"), *ups = fetch((size_t)M * N * H, "ups");
    float *dout = fetch((size_t)M * H, "dout"), *o = malloc(sizeof(float) * M * H);
    float *dx = calloc((size_t)M * H, sizeof(float)), *dups = calloc((size_t)M * N * H, 4);
    float *mem = malloc(sizeof(float) * fusion_cache_floats(&cfg, M));
    fusion_cache c;
    fusion_cache_carve(&c, mem, &cfg, M);
    fusion_forward(o, &c, x, ups, &f, M, T, NULL);
    cmp_out("out", o, (size_t)M * H);
    cmp_out("out_p", c.p, (size_t)M * N);
    fusion_backward(dx, dups, &g, &c, dout, x, ups, &f, M);
    cmp_grad(dx, (size_t)M * H, "grad.x");
    cmp_grad(dups, (size_t)M * N * H, "grad.ups");
    cmp_fusion_grads(gbuf, &cfg, "param.");
    free(w), free(gbuf), free(x), free(ups), free(dout), free(o), free(dx), free(dups), free(mem);
    st_close(&F);
}

/* ---- head -------------------------------------------------------------------------------- */

static void head_case(const char *name) {
    if (!open_fixture(name)) return;
    int H = meta_int("H"), L = meta_int("L"), B = meta_int("B");
    size_t np = head_nparams(H, L);
    float *w = malloc(np * sizeof(float)), *g = calloc(np, sizeof(float));
    head hd, gh;
    head_carve(&hd, w, H, L, 0.1f);
    head_carve(&gh, g, H, L, 0.1f);
    param_desc p[HEAD_NPARAMS];
    head_params(p, H, L);
    for (int i = 0; i < HEAD_NPARAMS; i++) load(w + p[i].offset, p[i].numel, "param.%s", p[i].name);
    float *cls = fetch((size_t)B * H, "cls"), *logits = malloc(sizeof(float) * B * L);
    float *probs = malloc(sizeof(float) * B * L), *dlogits = calloc((size_t)B * L, 4);
    float *dcls = calloc((size_t)B * H, sizeof(float)), loss;
    float *mem = malloc(sizeof(float) * head_cache_floats(H, B));
    head_cache c;
    head_cache_carve(&c, mem, H, B);
    head_forward(logits, &c, cls, H, &hd, B, NULL); /* dropout 0.1 configured, off in eval */
    cmp_out("logits", logits, (size_t)B * L);
    const char *hk = st_meta_get(&F, "head_kind");
    if (hk && !strcmp(hk, "multilabel")) { /* BCEWithLogitsLoss */
        float *t = fetch((size_t)B * L, "targets");
        loss = (float)head_bce_forward(probs, logits, t, B, L);
        cmp_out("probs", probs, (size_t)B * L);
        head_bce_backward(dlogits, probs, t, B, L);
        free(t);
    } else if (L == 1) {
        float *t = fetch(B, "targets");
        loss = (float)head_mse_forward(logits, t, B);
        head_mse_backward(dlogits, logits, t, B);
        free(t);
    } else {
        float *lf = fetch(B, "labels");
        int *lab = malloc(sizeof(int) * B);
        for (int b = 0; b < B; b++) lab[b] = (int)lf[b];
        loss = (float)head_ce_forward(probs, logits, lab, B, L);
        head_ce_backward(dlogits, probs, lab, B, L);
        free(lf), free(lab);
    }
    cmp_out("loss", &loss, 1);
    head_backward(dcls, H, &gh, &c, dlogits, &hd, B);
    cmp_grad(dcls, (size_t)B * H, "grad.cls");
    for (int i = 0; i < HEAD_NPARAMS; i++)
        cmp_grad(g + p[i].offset, p[i].numel, "grad.param.%s", p[i].name);
    free(w), free(g), free(cls), free(logits), free(probs), free(dlogits), free(dcls), free(mem);
    st_close(&F);
}

/* ---- site -------------------------------------------------------------------------------- */

static void site_case(const char *name) {
    if (!open_fixture(name)) return;
    int H = meta_int("H"), M = meta_int("M"), N = meta_int("N");
    float T = meta_float("T"), eps = meta_float("eps");
    int act = act_parse(meta("act")), r[8], acts[8];
    const char *rs = meta("r"); /* JSON list */
    for (int i = 0; i < N && i < 8; i++) {
        while (*rs && (*rs < '0' || *rs > '9')) rs++;
        r[i] = (int)strtol(rs, (char **)&rs, 10);
        acts[i] = act;
    }
    size_t na = 0;
    for (int i = 0; i < N; i++) na += adapter_nparams(H, r[i]);
    float *aw = malloc(na * sizeof(float)), *ag = calloc(na, sizeof(float));
    adapter a[8], ga[8];
    adapter_stack_carve(a, N, aw, H, r, acts);
    adapter_stack_carve(ga, N, ag, H, r, acts);
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        for (int k = 0; k < ADAPTER_NPARAMS; k++)
            load(aw + p[k].offset, p[k].numel, "param.adapter.%d.%s", i, p[k].name);
    }
    int has_fusion = strcmp(meta("method"), "none") != 0;
    fusion f, g;
    fusion_config cfg = {0};
    float *fw = NULL, *fg = NULL;
    if (has_fusion) {
        cfg = fixture_fusion_config(H, N);
        fw = load_fusion(&f, &g, &fg, &cfg, "param.fusion.");
    }
    site s = {site_arch_parse(meta("arch")), N,   a, ga, has_fusion ? &f : NULL,
              has_fusion ? &g : NULL,        NULL};
    af_err e;
    if (!ok(site_check(&s, &e) == 0, "%s: site", name)) diag("%s", e.msg);
    float *h = fetch((size_t)M * H, "h"), *rr = fetch((size_t)M * H, "r");
    float *lw = fetch(H, "ln.weight"), *lb = fetch(H, "ln.bias");
    float *dout = fetch((size_t)M * H, "dout"), *out = malloc(sizeof(float) * M * H);
    float *dh = calloc((size_t)M * H, sizeof(float)), *dr = calloc((size_t)M * H, 4);
    float *mem = malloc(sizeof(float) * site_cache_floats(&s, M));
    site_cache c;
    site_cache_carve(&c, mem, &s, M);
    site_forward(out, &c, &s, h, rr, lw, lb, eps, M, T, NULL);
    cmp_out("out", out, (size_t)M * H);
    if (has_fusion) cmp_out("out_p", c.fc.p, (size_t)M * N);
    site_backward(dh, dr, &c, &s, dout, h, rr, lw, M);
    cmp_grad(dh, (size_t)M * H, "grad.h");
    cmp_grad(dr, (size_t)M * H, "grad.r");
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        for (int k = 0; k < ADAPTER_NPARAMS; k++)
            cmp_grad(ag + p[k].offset, p[k].numel, "grad.param.adapter.%d.%s", i, p[k].name);
    }
    if (has_fusion) cmp_fusion_grads(fg, &cfg, "param.fusion.");
    free(aw), free(ag), free(fw), free(fg), free(h), free(rr), free(lw), free(lb), free(dout);
    free(out), free(dh), free(dr), free(mem);
    st_close(&F);
}

int main(void) {
    const char *adapters[] = {"adapter_relu", "adapter_gelu", "adapter_swish", "adapter_tanh"};
    const char *fusions[] = {"fusion_attention", "fusion_attention_t",   "fusion_static",
                             "fusion_multihead", "fusion_multihead_t",   "fusion_weighted",
                             "fusion_gating",    "fusion_gating_softmax"};
    const char *heads[] = {"head_classification", "head_regression", "head_multilabel"};
    const char *sites[] = {"site_pfeiffer", "site_pfeiffer_fusion", "site_pfeiffer_fusion_t",
                           "site_houlsby", "site_houlsby_fusion"};
    for (size_t i = 0; i < sizeof adapters / sizeof *adapters; i++) adapter_case(adapters[i]);
    for (size_t i = 0; i < sizeof fusions / sizeof *fusions; i++) fusion_case(fusions[i]);
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) head_case(heads[i]);
    for (size_t i = 0; i < sizeof sites / sizeof *sites; i++) site_case(sites[i]);
    ok(missing == 0, "every expected tensor and metadata key present (%d missing)", missing);
    return done_testing();
}
