/* site.c: a whole adapter site, Pfeiffer and Houlsby, one adapter or N fused: forward against the
 * composition written out with ops.h, backward (dh, dr, adapter and fusion gradients) by finite
 * differences, frozen parts leaving dh and dr unchanged. */
#include "site.h"

#include <stdlib.h>

#include "kgrad.h"
#include "ops.h"
#include "tap.h"

enum { H = 16, M = 8, NMAX = 3 };

typedef struct {
    site s;
    site_cache c;
    const float *h, *r, *ln_w, *ln_b, *G;
    float *out, T;
    int train;
} fixture;

static const float EPS_LN = 1e-5f;

static double loss(void *ctx) {
    fixture *f = ctx;
    af_rng rng;
    af_rng_seed(&rng, 5);
    site_forward(f->out, &f->c, &f->s, f->h, f->r, f->ln_w, f->ln_b, EPS_LN, M, f->T,
                 f->train ? &rng : NULL);
    return kg_dot(f->G, f->out, M * H);
}

/* out = LN(combine(x) + h + r), x = LN(h + r) or h, spelled out with the parts' own calls. */
static double composed_maxdiff(const fixture *f) {
    const site *s = &f->s;
    float hr[M * H], x[M * H], ups[M * NMAX * H], o[M * H], y[M * H], out[M * H];
    vec_add2(hr, f->h, f->r, M * H);
    if (s->arch == SITE_PFEIFFER)
        layernorm_forward(x, NULL, NULL, hr, f->ln_w, f->ln_b, M, H, EPS_LN);
    else
        memcpy(x, f->h, sizeof x);
    for (int i = 0; i < s->N; i++) {
        float up[M * H], *mem = malloc(sizeof(float) * adapter_cache_floats(&s->adapters[i], 1, M));
        adapter_cache c;
        adapter_cache_carve(&c, mem, &s->adapters[i], 1, M);
        adapter_forward(up, &c, x, &s->adapters[i], M);
        for (int m = 0; m < M; m++) memcpy(ups + (m * s->N + i) * H, up + m * H, H * sizeof(float));
        free(mem);
    }
    if (s->fusion) {
        float *mem = malloc(sizeof(float) * fusion_cache_floats(&s->fusion->cfg, M));
        fusion_cache c;
        fusion_cache_carve(&c, mem, &s->fusion->cfg, M);
        af_rng rng;
        af_rng_seed(&rng, 5);
        fusion_forward(o, &c, x, ups, s->fusion, M, f->T, f->train ? &rng : NULL);
        free(mem);
    } else {
        memcpy(o, ups, sizeof o);
    }
    vec_add2(y, o, hr, M * H);
    layernorm_forward(out, NULL, NULL, y, f->ln_w, f->ln_b, M, H, EPS_LN);
    return tap_maxdiff(out, f->out, M * H);
}

static void check(const char *name, int arch, int N, const int *act, const fusion_config *fc,
                  float T, int train, af_rng *rng) {
    char what[160];
    int r[NMAX] = {4, 3, 2};
    size_t na = 0;
    for (int i = 0; i < N; i++) na += adapter_nparams(H, r[i]);
    float *abuf = malloc(sizeof(float) * na), *agbuf = calloc(na, sizeof(float));
    adapter a[NMAX], ag[NMAX];
    adapter_stack_carve(a, N, abuf, H, r, act);
    adapter_stack_carve(ag, N, agbuf, H, r, act);
    kg_fill(abuf, na, rng, 0.4f);
    fusion fw, fg;
    float *fbuf = NULL, *fgbuf = NULL;
    size_t nf = 0;
    if (fc) {
        nf = fusion_nparams(fc);
        fbuf = malloc(sizeof(float) * nf), fgbuf = calloc(nf, sizeof(float));
        fusion_carve(&fw, fc, fbuf);
        fusion_carve(&fg, fc, fgbuf);
        kg_fill(fbuf, nf, rng, 0.2f);
        if (fw.value_w)
            for (int i = 0; i < H; i++) fw.value_w[i * H + i] += 1;
    }
    float h[M * H], rr[M * H], ln_w[H], ln_b[H], G[M * H], out[M * H];
    kg_fill(h, M * H, rng, 1.0f);
    kg_fill(rr, M * H, rng, 1.0f);
    kg_fill(ln_w, H, rng, 0.3f);
    for (int i = 0; i < H; i++) ln_w[i] += 1;
    kg_fill(ln_b, H, rng, 0.3f);
    kg_fill(G, M * H, rng, 1.0f);

    fixture f = {{arch, N, a, ag, fc ? &fw : NULL, fc ? &fg : NULL, NULL},
                 {0},
                 h,
                 rr,
                 ln_w,
                 ln_b,
                 G,
                 out,
                 T,
                 train};
    af_err e;
    ok(site_check(&f.s, &e) == 0, "%s: site_check passes", name);
    float *mem = malloc(sizeof(float) * site_cache_floats(&f.s, M));
    site_cache_carve(&f.c, mem, &f.s, M);
    loss(&f);
    /* keep ReLU inputs (adapters', gate's) clear of the kink for the central differences */
    for (int tries = 0; tries < 100; tries++) {
        double mn = INFINITY;
        for (int k = 0; k < M * f.c.ac.R; k++) mn = fmin(mn, fabs(f.c.ac.pre[k]));
        if (fc && fc->method == FUSION_GATING)
            for (int k = 0; k < M * (H / 2); k++) mn = fmin(mn, fabs(f.c.fc.z1[k]));
        if (mn > 0.02) break;
        for (int i = 0; i < N; i++) kg_fill(a[i].down_b, r[i], rng, 0.4f);
        if (fc && fc->method == FUSION_GATING) kg_fill(fw.gate0_b, H / 2, rng, 0.2f);
        loss(&f);
    }
    double d = composed_maxdiff(&f);
    ok(d < 1e-5, "%s: forward equals the composition of its parts (max diff %.1e)", name, d);

    float dh[M * H] = {0}, dr[M * H] = {0};
    site_backward(dh, dr, &f.c, &f.s, G, h, rr, ln_w, M);
    snprintf(what, sizeof what, "%s: dh", name);
    kg_check(what, loss, &f, h, dh, M * H, 1e-3f, 1e-2);
    snprintf(what, sizeof what, "%s: dr", name);
    kg_check(what, loss, &f, rr, dr, M * H, 1e-3f, 1e-2);
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        for (int k = 0; k < ADAPTER_NPARAMS; k++) {
            snprintf(what, sizeof what, "%s: adapter %d %s", name, i, p[k].name);
            kg_check(what, loss, &f, abuf + p[k].offset, agbuf + p[k].offset, p[k].numel, 1e-3f,
                     1e-2);
        }
    }
    if (fc) {
        param_desc p[fusion_param_count(fc)];
        int n = fusion_params(p, fc);
        for (int k = 0; k < n; k++) {
            if (!strcmp(p[k].name, "key.bias") && !train) continue; /* zero: see unit/fusion */
            snprintf(what, sizeof what, "%s: fusion %s", name, p[k].name);
            kg_check(what, loss, &f, fbuf + p[k].offset, fgbuf + p[k].offset, p[k].numel, 1e-3f,
                     1e-2);
        }
    }
    /* frozen adapters and fusion: the same dh, dr; dr alone */
    float dh2[M * H] = {0}, dr2[M * H] = {0}, dr3[M * H] = {0};
    f.s.adapter_grads = NULL, f.s.fusion_grad = NULL;
    site_backward(dh2, dr2, &f.c, &f.s, G, h, rr, ln_w, M);
    site_backward(NULL, dr3, &f.c, &f.s, G, h, rr, ln_w, M);
    ok(tap_maxdiff(dh, dh2, M * H) < 1e-6 && tap_maxdiff(dr, dr2, M * H) < 1e-6 &&
           tap_maxdiff(dr, dr3, M * H) < 1e-6,
       "%s: frozen backward gives the same dh, dr; dh = NULL leaves dr the same", name);
    free(abuf), free(agbuf), free(fbuf), free(fgbuf), free(mem);
}

int main(void) {
    af_rng rng;
    af_rng_seed(&rng, 11);
    ok(site_arch_parse("pfeiffer") == SITE_PFEIFFER && site_arch_parse("houlsby") == SITE_HOULSBY &&
           site_arch_parse("lora") == -1 && !strcmp(site_arch_name(SITE_HOULSBY), "houlsby"),
       "architecture names");
    {
        adapter a[2] = {{.H = H}, {.H = H}};
        site s = {SITE_PFEIFFER, 2, a, NULL, NULL, NULL, NULL};
        af_err e;
        ok(site_check(&s, &e) == -1 && strstr(e.msg, "fusion"),
           "site_check: two adapters without fusion refused (%s)", e.msg);
    }
    int relu[NMAX] = {AF_ACT_RELU, AF_ACT_RELU, AF_ACT_RELU};
    int swish[NMAX] = {AF_ACT_SWISH, AF_ACT_SWISH, AF_ACT_SWISH};
    int mixed[NMAX] = {AF_ACT_RELU, AF_ACT_GELU, AF_ACT_TANH};
    check("pfeiffer single", SITE_PFEIFFER, 1, relu, NULL, 1, 0, &rng);
    check("houlsby single", SITE_HOULSBY, 1, swish, NULL, 1, 0, &rng);
    fusion_config att = {.method = FUSION_ATTENTION, .H = H, .N = 3, .dropout = 0.2f};
    check("pfeiffer attention", SITE_PFEIFFER, 3, relu, &att, 1, 0, &rng);
    check("pfeiffer attention dropout T=1.5", SITE_PFEIFFER, 3, mixed, &att, 1.5f, 1, &rng);
    check("houlsby attention", SITE_HOULSBY, 3, swish, &att, 1, 0, &rng);
    fusion_config gate = {.method = FUSION_GATING, .H = H, .N = 2, .dropout = 0.2f};
    check("houlsby gating dropout", SITE_HOULSBY, 2, swish, &gate, 1, 1, &rng);
    fusion_config mh = {.method = FUSION_MULTIHEAD, .H = H, .N = 3, .heads = 2};
    check("pfeiffer multihead T=2", SITE_PFEIFFER, 3, relu, &mh, 2, 0, &rng);
    fusion_config wt = {.method = FUSION_WEIGHTED, .H = H, .N = 2};
    check("pfeiffer weighted", SITE_PFEIFFER, 2, relu, &wt, 1, 0, &rng);
    return done_testing();
}
