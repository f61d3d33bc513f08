/* hier.c: hierarchical fusion at a site against the PyTorch fixtures of
 * scripts/gen-hier-fixtures.py (tests/fixtures/kernels/hier_*): a fusion over (a fusion over
 * A, B) and C at a Pfeiffer site, and three levels of other methods at a Houlsby site. Outputs
 * and every level's weights within 1e-4 absolute, gradients (h, r, every adapter, the root
 * fusion) within 1e-3 relative, as tests/parity/kernels.c measures the flat fusion; the site
 * carved alone and carved with shared scratch as the model carves it. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fusion_tree.h"
#include "ops.h"
#include "safetensors.h"
#include "site.h"
#include "kfixture.h"

#define MAXN 8

/* A fusion {"method", "T", "in"} of the metadata, its parameters loaded from `pre`. */
typedef struct {
    fusion f, g;
    float *w, *gw, T;
    int in[MAXN];
} node;

static void load_node(node *nd, const cJSON *j, int H, const char *pre) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "in"),
                *T = cJSON_GetObjectItemCaseSensitive(j, "T"),
                *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    fusion_config cfg = {.method = fusion_method_parse(method->valuestring),
                         .H = H,
                         .N = cJSON_GetArraySize(in),
                         .heads = 4};
    for (int j2 = 0; j2 < cfg.N && j2 < MAXN; j2++)
        nd->in[j2] = cJSON_GetArrayItem(in, j2)->valueint;
    nd->T = (float)T->valuedouble;
    size_t np = fusion_nparams(&cfg);
    nd->w = malloc(np * sizeof(float)), nd->gw = calloc(np, sizeof(float));
    fusion_carve(&nd->f, &cfg, nd->w);
    fusion_carve(&nd->g, &cfg, nd->gw);
    param_desc p[fusion_param_count(&cfg)];
    int n = fusion_params(p, &cfg);
    for (int i = 0; i < n; i++) load(nd->w + p[i].offset, p[i].numel, "%s%s", pre, p[i].name);
}

static void hier_case(const char *name, int shared) {
    char path[1024];
    const char *top = getenv("AF_TOP");
    snprintf(path, sizeof path, "%s/tests/fixtures/kernels/%s.safetensors", top && *top ? top : ".",
             name);
    af_err e;
    fname = name;
    if (!ok(st_open(&F, path, &e) == 0, "%s: fixture opens", name)) {
        diag("%s", e.msg);
        return;
    }
    int H = atoi(meta("H")), M = atoi(meta("M")), N = atoi(meta("N"));
    float eps = (float)atof(meta("eps"));
    int arch = site_arch_parse(meta("arch")), r[MAXN], acts[MAXN];
    cJSON *rj = cJSON_Parse(meta("r")), *tj = cJSON_Parse(meta("tree")),
          *rootj = cJSON_Parse(meta("root"));
    for (int i = 0; i < N; i++) {
        r[i] = cJSON_GetArrayItem(rj, i)->valueint;
        acts[i] = arch == SITE_PFEIFFER ? AF_ACT_RELU : AF_ACT_SWISH;
    }
    size_t na = 0;
    for (int i = 0; i < N; i++) na += adapter_nparams(H, r[i]);
    float *aw = malloc(na * sizeof(float)), *ag = calloc(na, sizeof(float));
    adapter a[MAXN], ga[MAXN];
    adapter_stack_carve(a, N, aw, H, r, acts);
    adapter_stack_carve(ga, N, ag, H, r, acts);
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        for (int k = 0; k < ADAPTER_NPARAMS; k++)
            load(aw + p[k].offset, p[k].numel, "param.adapter.%d.%s", i, p[k].name);
    }
    int nn = cJSON_GetArraySize(tj);
    node nodes[MAXN], root;
    fusion_tree_node tn[MAXN];
    for (int k = 0; k < nn; k++) {
        char pre[64];
        snprintf(pre, sizeof pre, "param.inner.%d.", k);
        load_node(&nodes[k], cJSON_GetArrayItem(tj, k), H, pre);
        tn[k] = (fusion_tree_node){&nodes[k].f, nodes[k].T, nodes[k].in};
    }
    load_node(&root, rootj, H, "param.fusion.");
    fusion_tree t = {nn, tn, root.in, N};
    site s = {arch, N, a, ga, &root.f, &root.g, &t};
    if (!ok(site_check(&s, &e) == 0, "%s: site with its tree", name)) diag("%s", e.msg);
    float *h = malloc(sizeof(float) * M * H), *rr = malloc(sizeof(float) * M * H);
    float *lw = malloc(sizeof(float) * H), *lb = malloc(sizeof(float) * H);
    float *dout = malloc(sizeof(float) * M * H), *out = malloc(sizeof(float) * M * H);
    float *dh = calloc((size_t)M * H, sizeof(float)), *dr = calloc((size_t)M * H, sizeof(float));
    load(h, (size_t)M * H, "h"), load(rr, (size_t)M * H, "r"), load(lw, H, "ln.weight");
    load(lb, H, "ln.bias"), load(dout, (size_t)M * H, "dout");
    site_cache c;
    float *mem, *scratch = NULL;
    if (shared) {
        mem = calloc(site_cache_floats_shared(&s, M) + 2, sizeof(float));
        scratch = calloc(site_scratch_floats(&s, M) + 1, sizeof(float));
        site_cache_carve_shared(&c, mem, scratch, &s, M);
    } else {
        mem = calloc(site_cache_floats(&s, M) + 2, sizeof(float));
        site_cache_carve(&c, mem, &s, M);
    }
    site_forward(out, &c, &s, h, rr, lw, lb, eps, M, root.T, NULL);
    cmp_out("out", out, (size_t)M * H);
    cmp_out("out_p", c.fc.p, (size_t)M * root.f.cfg.N);
    for (int k = 0; k < nn; k++) {
        char what[32];
        snprintf(what, sizeof what, "inner_p.%d", k);
        cmp_out(what, fusion_tree_weights(&c.tc, k), (size_t)M * nodes[k].f.cfg.N);
    }
    site_backward(dh, dr, &c, &s, dout, h, rr, lw, M);
    cmp_grad(dh, (size_t)M * H, "grad.h");
    cmp_grad(dr, (size_t)M * H, "grad.r");
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        for (int k = 0; k < ADAPTER_NPARAMS; k++)
            cmp_grad(ag + p[k].offset, p[k].numel, "grad.param.adapter.%d.%s", i, p[k].name);
    }
    param_desc p[fusion_param_count(&root.f.cfg)];
    int np = fusion_params(p, &root.f.cfg);
    for (int i = 0; i < np; i++)
        cmp_grad(root.gw + p[i].offset, p[i].numel, "grad.param.fusion.%s", p[i].name);
    for (int k = 0; k < nn; k++) free(nodes[k].w), free(nodes[k].gw);
    free(root.w), free(root.gw), free(aw), free(ag), free(h), free(rr), free(lw), free(lb);
    free(dout), free(out), free(dh), free(dr), free(mem), free(scratch);
    cJSON_Delete(rj), cJSON_Delete(tj), cJSON_Delete(rootj);
    st_close(&F);
}

int main(void) {
    const char *cases[] = {"hier_pfeiffer", "hier_houlsby_3"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        hier_case(cases[i], 0);
        hier_case(cases[i], 1);
    }
    ok(missing == 0, "every expected tensor and metadata key present (%d missing)", missing);
    return done_testing();
}
