/* fusion.c: every fusion method: forward against a direct (no algebra) computation, including
 * under dropout with the mask the kernel drew; backward by finite differences for x, ups and
 * every parameter, with dropout and temperature; init, the regulariser, the temperature schedule.
 */
#include "fusion.h"

#include <stdlib.h>

#include "kgrad.h"
#include "ops.h"
#include "tap.h"

enum { H = 16, N = 3, M = 9 };

typedef struct {
    fusion *f;
    fusion_cache c;
    const float *x, *ups, *G;
    float *o;
    float T;
    int train;
    uint64_t seed;
} fixture;

static double loss(void *ctx) {
    fixture *fx = ctx;
    af_rng r;
    af_rng_seed(&r, fx->seed); /* the same masks on every call */
    fusion_forward(fx->o, &fx->c, fx->x, fx->ups, fx->f, M, fx->T, fx->train ? &r : NULL);
    return kg_dot(fx->G, fx->o, M * H);
}

/* y[n] = W[n,k]·x[k] + b (b may be NULL), in double */
static void mv(double *y, const float *W, const float *b, const double *x, int n, int k) {
    for (int i = 0; i < n; i++) {
        double s = b ? b[i] : 0;
        for (int j = 0; j < k; j++) s += (double)W[i * k + j] * x[j];
        y[i] = s;
    }
}

static void softmax_d(double *v, int n) {
    double mx = v[0], s = 0;
    for (int i = 1; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    for (int i = 0; i < n; i++) s += (v[i] = exp(v[i] - mx));
    for (int i = 0; i < n; i++) v[i] /= s;
}

/* The definitions of fusion.h computed literally, per token, in double; dropout from c's mask. */
static void direct(double *o, const fusion *f, const fusion_cache *c, const float *x,
                   const float *ups, float T) {
    const fusion_config *cfg = &f->cfg;
    float keep = 1.0f / (1.0f - cfg->dropout);
    for (int m = 0; m < M; m++) {
        double xm[H], u[N][H], p[N], om[H] = {0};
        for (int j = 0; j < H; j++) xm[j] = x[m * H + j];
        for (int i = 0; i < N; i++)
            for (int j = 0; j < H; j++) u[i][j] = ups[(m * N + i) * H + j];
        if (cfg->method == FUSION_ATTENTION || cfg->method == FUSION_STATIC) {
            double q[H], k[H], v[N][H];
            mv(q, f->query_w, f->query_b, xm, H, H);
            for (int i = 0; i < N; i++) {
                mv(k, f->key_w, f->key_b, u[i], H, H);
                double s = 0;
                for (int j = 0; j < H; j++) s += q[j] * k[j];
                if (c->dropped) s = c->mask[m * N + i] ? s * keep : 0;
                p[i] = s / T;
                if (f->value_w)
                    mv(v[i], f->value_w, NULL, u[i], H, H);
                else
                    memcpy(v[i], u[i], sizeof v[i]);
            }
            softmax_d(p, N);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < H; j++) om[j] += p[i] * v[i][j];
        } else if (cfg->method == FUSION_MULTIHEAD) {
            int nh = cfg->heads, d = H / nh;
            double qkv[N][3 * H], y[H] = {0};
            for (int i = 0; i < N; i++) mv(qkv[i], f->in_w, f->in_b, u[i], 3 * H, H);
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < N; i++) {
                    double a[N];
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int t = 0; t < d; t++) s += qkv[i][h * d + t] * qkv[j][H + h * d + t];
                        a[j] = s / (sqrt((double)d) * T);
                    }
                    softmax_d(a, N);
                    for (int j = 0; j < N; j++) {
                        if (c->dropped)
                            a[j] = c->mask[((m * nh + h) * N + i) * N + j] ? a[j] * keep : 0;
                        for (int t = 0; t < d; t++)
                            y[h * d + t] += a[j] * qkv[j][2 * H + h * d + t] / N;
                    }
                }
            mv(om, f->out_w, f->out_b, y, H, H);
        } else if (cfg->method == FUSION_WEIGHTED) {
            for (int i = 0; i < N; i++) p[i] = f->weights[i];
            softmax_d(p, N);
            for (int i = 0; i < N; i++)
                for (int j = 0; j < H; j++) om[j] += p[i] * u[i][j];
        } else {
            int H2 = H / 2;
            double z[H / 2];
            mv(z, f->gate0_w, f->gate0_b, xm, H2, H);
            for (int j = 0; j < H2; j++) {
                z[j] = z[j] > 0 ? z[j] : 0;
                if (c->dropped) z[j] = c->mask[m * H2 + j] ? z[j] * keep : 0;
            }
            mv(p, f->gate3_w, f->gate3_b, z, N, H2);
            if (cfg->gate_softmax)
                softmax_d(p, N);
            else
                for (int i = 0; i < N; i++) p[i] = 1 / (1 + exp(-p[i]));
            for (int i = 0; i < N; i++)
                for (int j = 0; j < H; j++) om[j] += p[i] * u[i][j];
        }
        memcpy(o + m * H, om, sizeof om);
    }
}

static void check(const char *name, fusion_config cfg, float T, int train, af_rng *rng) {
    char what[160];
    size_t np = fusion_nparams(&cfg);
    float *buf = malloc(sizeof(float) * np), *gbuf = calloc(np, sizeof(float));
    fusion f, g;
    fusion_carve(&f, &cfg, buf);
    fusion_carve(&g, &cfg, gbuf);
    /* away from the init so every term matters, scaled to keep the softmaxes unsaturated */
    kg_fill(buf, np, rng, cfg.method == FUSION_WEIGHTED ? 1.0f : 0.2f);
    if (f.value_w)
        for (int i = 0; i < H; i++) f.value_w[i * H + i] += 1;

    float x[M * H], ups[M * N * H], G[M * H], o[M * H];
    kg_fill(x, M * H, rng, 1.0f);
    kg_fill(ups, M * N * H, rng, 1.0f);
    kg_fill(G, M * H, rng, 1.0f);
    float *mem = malloc(sizeof(float) * fusion_cache_floats(&cfg, M));
    fixture fx = {&f, {0}, x, ups, G, o, T, train, 1234};
    fusion_cache_carve(&fx.c, mem, &cfg, M);
    loss(&fx);
    /* Central differences across the gate's ReLU kink are meaningless: keep its inputs clear of
     * it by more than any perturbation moves them. */
    for (int tries = 0; cfg.method == FUSION_GATING && tries < 100; tries++) {
        double mn = INFINITY;
        for (int k = 0; k < M * (H / 2); k++) mn = fmin(mn, fabs(fx.c.z1[k]));
        if (mn > 0.02) break;
        kg_fill(f.gate0_b, H / 2, rng, 0.2f);
        loss(&fx);
    }
    double ref[M * H], worst = 0;
    direct(ref, &f, &fx.c, x, ups, T);
    for (int k = 0; k < M * H; k++) worst = fmax(worst, fabs(ref[k] - o[k]));
    int ndrop = 0;
    if (fx.c.dropped) {
        size_t nm = cfg.method == FUSION_MULTIHEAD ? (size_t)M * cfg.heads * N * N
                    : cfg.method == FUSION_GATING  ? (size_t)M * (H / 2)
                                                   : (size_t)M * N;
        for (size_t k = 0; k < nm; k++) ndrop += !fx.c.mask[k];
    }
    ok(worst < 1e-5 && (!train || cfg.method == FUSION_WEIGHTED || ndrop > 0),
       "%s: forward equals the literal definition (max diff %.2e, %d dropped)", name, worst, ndrop);

    if (cfg.method != FUSION_GATING || cfg.gate_softmax) {
        double dev = 0;
        for (int m = 0; m < M; m++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += fx.c.p[m * N + i];
            dev = fmax(dev, fabs(s - 1));
        }
        ok(dev < 1e-5, "%s: weights over adapters sum to 1 per token", name);
    }

    float dx[M * H] = {0}, dups[M * N * H] = {0};
    fusion_backward(dx, dups, &g, &fx.c, G, x, ups, &f, M);
    float eps = 1e-3f;
    double tol = 1e-2;
    if (cfg.method == FUSION_ATTENTION || cfg.method == FUSION_STATIC ||
        cfg.method == FUSION_GATING) {
        snprintf(what, sizeof what, "%s: dx", name);
        kg_check(what, loss, &fx, x, dx, M * H, eps, tol);
    } else {
        int zero = 1;
        for (int k = 0; k < M * H; k++) zero &= dx[k] == 0;
        ok(zero, "%s: x is not an input, dx untouched", name);
    }
    snprintf(what, sizeof what, "%s: dups", name);
    kg_check(what, loss, &fx, ups, dups, M * N * H, eps, tol);
    param_desc p[fusion_param_count(&cfg)];
    int n = fusion_params(p, &cfg);
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "%s: %s", name, p[i].name);
        if (!fx.c.dropped && !strcmp(p[i].name, "key.bias")) {
            /* q·bk is the same for every adapter: without dropout the softmax cancels it */
            double mx = 0;
            for (size_t k = 0; k < p[i].numel; k++) mx = fmax(mx, fabs(gbuf[p[i].offset + k]));
            ok(mx < 1e-5, "%s: zero without dropout (max %.1e)", what, mx);
        } else if (p[i].trainable) {
            kg_check(what, loss, &fx, buf + p[i].offset, gbuf + p[i].offset, p[i].numel, eps, tol);
        } else {
            int zero = 1;
            for (size_t k = 0; k < p[i].numel; k++) zero &= gbuf[p[i].offset + k] == 0;
            ok(zero, "%s: not trainable, gradient untouched", what);
        }
    }
    /* frozen fusion: the same dups without parameter gradients */
    float dups2[M * N * H] = {0};
    fusion_backward(NULL, dups2, NULL, &fx.c, G, x, ups, &f, M);
    ok(tap_maxdiff(dups, dups2, M * N * H) < 1e-6, "%s: frozen backward gives the same dups", name);
    free(buf), free(gbuf), free(mem);
}

static double reg_loss(void *f) {
    return fusion_reg_forward(f);
}

static fusion_config config(int method) {
    return (fusion_config){.method = method, .H = H, .N = N, .heads = 4};
}

int main(void) {
    af_rng rng;
    af_rng_seed(&rng, 7);
    af_err e;

    ok(fusion_method_parse("attention") == FUSION_ATTENTION &&
           fusion_method_parse("gating") == FUSION_GATING && fusion_method_parse("mean") == -1 &&
           !strcmp(fusion_method_name(FUSION_MULTIHEAD), "multihead"),
       "method names");
    fusion_config bad = config(FUSION_MULTIHEAD);
    bad.heads = 5;
    ok(fusion_config_check(&bad, &e) == -1 && strstr(e.msg, "heads"),
       "config check: heads must divide H (%s)", e.msg);
    bad = config(FUSION_ATTENTION);
    ok(fusion_config_check(&bad, &e) == 0, "config check: a good config passes");

    /* parameter tables */
    {
        fusion_config c = config(FUSION_ATTENTION);
        param_desc p[fusion_param_count(&c)];
        int n = fusion_params(p, &c);
        ok(n == 5 && !strcmp(p[0].name, "query.weight") && !strcmp(p[3].name, "key.bias") &&
               !strcmp(p[4].name, "value.weight") && p[4].offset + p[4].numel == fusion_nparams(&c),
           "attention: AdapterHub parameter names");
        c = config(FUSION_STATIC);
        ok(fusion_params(p, &c) == 4 && fusion_nparams(&c) == 2 * H * H + 2 * H,
           "static: no value matrix");
        c = config(FUSION_MULTIHEAD);
        n = fusion_params(p, &c);
        ok(n == 4 && p[0].shape[0] == 3 * H && !strcmp(p[2].name, "out_proj.weight"),
           "multihead: nn.MultiheadAttention parameter names");
        c = config(FUSION_GATING);
        n = fusion_params(p, &c);
        ok(n == 4 && p[0].shape[0] == H / 2 && p[2].shape[0] == N && p[2].shape[1] == H / 2 &&
               !strcmp(p[3].name, "gate.3.bias"),
           "gating: gate.0 (H/2, H), gate.3 (N, H/2)");
        c = config(FUSION_WEIGHTED);
        c.fixed = 1;
        n = fusion_params(p, &c);
        ok(n == 1 && p[0].numel == N && !p[0].trainable, "weighted fixed: not trainable");
    }

    /* init */
    {
        fusion_config c = config(FUSION_ATTENTION);
        float *buf = malloc(sizeof(float) * fusion_nparams(&c));
        fusion f;
        fusion_carve(&f, &c, buf);
        fusion_init(&f, &rng);
        int ident = 1;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < H; j++) ident &= f.value_w[i * H + j] == (i == j ? 1.0f : 1e-6f);
        int zb = 1;
        for (int i = 0; i < H; i++) zb &= f.query_b[i] == 0 && f.key_b[i] == 0;
        ok(ident && zb, "attention init: value identity with 1e-6 elsewhere, zero biases");
        ok(fabs(fusion_reg_forward(&f) - 0.01 * (H * H - H) * 1e-12) < 1e-12,
           "regulariser at init: 0.01·Σ(1e-6)²");
        /* at init the scores are tiny: about uniform weights, o about the mean of the ups */
        float x[M * H], ups[M * N * H], o[M * H];
        kg_fill(x, M * H, &rng, 1.0f);
        kg_fill(ups, M * N * H, &rng, 1.0f);
        float *mem = malloc(sizeof(float) * fusion_cache_floats(&c, M));
        fusion_cache fc;
        fusion_cache_carve(&fc, mem, &c, M);
        fusion_forward(o, &fc, x, ups, &f, M, 1.0f, NULL);
        double dev = 0;
        for (int k = 0; k < M * N; k++) dev = fmax(dev, fabs(fc.p[k] - 1.0 / N));
        ok(dev < 0.05, "attention init: weights about 1/N (max dev %.3f)", dev);
        free(buf), free(mem);

        c = config(FUSION_WEIGHTED);
        float w[N];
        fusion_carve(&f, &c, w);
        fusion_init(&f, &rng);
        mem = malloc(sizeof(float) * fusion_cache_floats(&c, M));
        fusion_cache_carve(&fc, mem, &c, M);
        fusion_forward(o, &fc, x, ups, &f, M, 1.0f, NULL);
        double d = 0;
        for (int m = 0; m < M; m++)
            for (int j = 0; j < H; j++) {
                double mean = 0;
                for (int i = 0; i < N; i++) mean += ups[(m * N + i) * H + j] / N;
                d = fmax(d, fabs(mean - o[m * H + j]));
            }
        ok(d < 1e-6, "weighted init: the plain mean of the adapters");
        free(mem);
    }

    /* options of a method's own, from its row */
    {
        char buf[64];
        fusion_methods_taking(buf, sizeof buf, "heads");
        ok(fusion_method_takes(FUSION_MULTIHEAD, "heads") &&
               !fusion_method_takes(FUSION_ATTENTION, "heads") &&
               fusion_method_takes(FUSION_WEIGHTED, "fixed_weights") &&
               fusion_method_takes(FUSION_GATING, "gate") && !strcmp(buf, "multihead"),
           "options: each method's own, by its row (heads: %s)", buf);
    }

    /* static weights: the method row gives them, as the forward computes them */
    {
        fusion_config c = config(FUSION_WEIGHTED);
        float w[N], sw[N], o[M * H], x[M * H] = {0}, ups[M * N * H] = {0};
        fusion f;
        fusion_carve(&f, &c, w);
        for (int i = 0; i < N; i++) w[i] = 0.7f * af_rng_normal(&rng);
        float *mem = malloc(sizeof(float) * fusion_cache_floats(&c, M));
        fusion_cache fc;
        fusion_cache_carve(&fc, mem, &c, M);
        fusion_forward(o, &fc, x, ups, &f, M, 1.0f, NULL);
        ok(fusion_has_static_weights(&c) && fusion_static_weights(sw, &f) == 0 &&
               !memcmp(sw, fc.p + (M - 1) * N, sizeof sw) && sw[0] != sw[1],
           "weighted: static weights equal the forward's, bit for bit");
        int none = 1;
        for (int m = FUSION_ATTENTION; m <= FUSION_GATING; m++) {
            c = config(m);
            none &= m == FUSION_WEIGHTED || !fusion_has_static_weights(&c);
        }
        fusion a = {.cfg = config(FUSION_GATING)};
        ok(none && fusion_static_weights(sw, &a) == -1,
           "every other method weighs per token: no static weights");
        free(mem);
    }

    /* regulariser gradient */
    {
        fusion_config c = config(FUSION_ATTENTION);
        size_t np = fusion_nparams(&c);
        float *buf = malloc(sizeof(float) * np), *gbuf = calloc(np, sizeof(float));
        fusion f, g;
        fusion_carve(&f, &c, buf);
        fusion_carve(&g, &c, gbuf);
        kg_fill(buf, np, &rng, 0.1f);
        double want = 0;
        for (int i = 0; i < H; i++)
            for (int j = 0; j < H; j++) {
                double d = (i == j) - (double)f.value_w[i * H + j];
                want += 0.01 * d * d;
            }
        ok(fabs(fusion_reg_forward(&f) - want) < 1e-9, "regulariser: 0.01·‖I − Wv‖²");
        fusion_reg_backward(&g, &f, 1.0f);
        kg_check("regulariser gradient", reg_loss, &f, f.value_w, g.value_w, H * H, 1e-3f, 1e-3);
        free(buf), free(gbuf);
    }

    /* temperature schedule: AdapterHub's T = 50, minus 50/1000 per forward, floor 1 */
    ok(fusion_temperature(0) == 50.0 && fabs(fusion_temperature(1) - 49.95) < 1e-12 &&
           fabs(fusion_temperature(979) - 1.05) < 1e-9 && fusion_temperature(980) == 1.0 &&
           fusion_temperature(100000) == 1.0,
       "temperature: 50, 49.95, ..., 1");

    fusion_config c;
    check("attention", config(FUSION_ATTENTION), 1.0f, 0, &rng);
    check("attention T=2.5", config(FUSION_ATTENTION), 2.5f, 0, &rng);
    c = config(FUSION_ATTENTION), c.dropout = 0.3f;
    check("attention dropout T=1.7", c, 1.7f, 1, &rng);
    check("static", config(FUSION_STATIC), 1.0f, 0, &rng);
    c = config(FUSION_STATIC), c.dropout = 0.3f;
    check("static dropout T=3", c, 3.0f, 1, &rng);
    check("multihead", config(FUSION_MULTIHEAD), 1.0f, 0, &rng);
    c = config(FUSION_MULTIHEAD), c.dropout = 0.25f, c.heads = 2;
    check("multihead 2 heads dropout T=2", c, 2.0f, 1, &rng);
    check("weighted", config(FUSION_WEIGHTED), 1.0f, 0, &rng);
    c = config(FUSION_WEIGHTED), c.fixed = 1;
    check("weighted fixed", c, 1.0f, 1, &rng);
    check("gating sigmoid", config(FUSION_GATING), 1.0f, 0, &rng);
    c = config(FUSION_GATING), c.gate_softmax = 1;
    check("gating softmax", c, 1.0f, 0, &rng);
    c = config(FUSION_GATING), c.dropout = 0.3f;
    check("gating sigmoid dropout", c, 1.0f, 1, &rng);
    return done_testing();
}
