/* adapter.c: bottleneck adapters, alone and stacked: forward against a direct computation,
 * backward by finite differences, the stacked sgemm path against the per-adapter path. */
#include "adapter.h"

#include <stdlib.h>

#include "kgrad.h"
#include "ops.h"
#include "tap.h"

enum { H = 12, M = 7, NS = 3 };

typedef struct {
    adapter *a;
    int N, R;
    const float *x;
    const float *G; /* (M, N, H) upstream gradient */
    float *ups;
    adapter_cache c;
} fixture;

static double loss(void *ctx) {
    fixture *f = ctx;
    adapter_stack_forward(f->ups, &f->c, f->x, f->a, f->N, M);
    return kg_dot(f->G, f->ups, (size_t)M * f->N * H);
}

/* up = act(x·Wdᵀ + bd)·Wuᵀ + bu, one token and one adapter at a time, in double. */
static double direct_maxdiff(const float *ups, const float *x, const adapter *a, int N) {
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int i = 0; i < N; i++) {
            float hid[64];
            for (int k = 0; k < a[i].r; k++) {
                double s = a[i].down_b[k];
                for (int j = 0; j < H; j++) s += (double)a[i].down_w[k * H + j] * x[m * H + j];
                float pre = (float)s;
                act_forward(&hid[k], &pre, 1, a[i].act);
            }
            for (int j = 0; j < H; j++) {
                double s = a[i].up_b[j];
                for (int k = 0; k < a[i].r; k++) s += (double)a[i].up_w[j * a[i].r + k] * hid[k];
                double d = fabs(s - ups[((size_t)m * N + i) * H + j]);
                worst = d > worst ? d : worst;
            }
        }
    return worst;
}

/* Checks dx and every weight gradient of a stack by finite differences. */
static void check_grads(const char *name, adapter *a, float *wbuf, int N, float eps, double tol,
                        af_rng *rng) {
    char what[128];
    fixture f = {a, N, 0, NULL, NULL, NULL, {0}};
    for (int i = 0; i < N; i++) f.R += a[i].r;
    float *x = malloc(sizeof(float) * M * H), *G = malloc(sizeof(float) * M * N * H);
    float *dx = calloc(M * H, sizeof(float));
    float *mem = malloc(sizeof(float) * adapter_cache_floats(a, N, M));
    f.ups = malloc(sizeof(float) * M * N * H);
    kg_fill(x, M * H, rng, 1.0f);
    kg_fill(G, M * N * H, rng, 1.0f);
    f.x = x, f.G = G;
    adapter_cache_carve(&f.c, mem, a, N, M);

    size_t nw = 0;
    for (int i = 0; i < N; i++) nw += adapter_nparams(H, a[i].r);
    float *gbuf = calloc(nw, sizeof(float));
    adapter *g = malloc(sizeof(adapter) * N);
    /* gradients in the same layout as the weights: offset-for-offset */
    for (int i = 0; i < N; i++)
        g[i] = (adapter){H,
                         a[i].r,
                         a[i].act,
                         gbuf + (a[i].down_w - wbuf),
                         gbuf + (a[i].down_b - wbuf),
                         gbuf + (a[i].up_w - wbuf),
                         gbuf + (a[i].up_b - wbuf)};
    loss(&f);
    adapter_stack_backward(dx, g, &f.c, G, x, a, N, M);

    snprintf(what, sizeof what, "%s: dx", name);
    kg_check(what, loss, &f, x, dx, M * H, eps, tol);
    for (int i = 0; i < N; i++) {
        int r = a[i].r;
        snprintf(what, sizeof what, "%s: adapter %d down_w", name, i);
        kg_check(what, loss, &f, a[i].down_w, g[i].down_w, (size_t)r * H, eps, tol);
        snprintf(what, sizeof what, "%s: adapter %d down_b", name, i);
        kg_check(what, loss, &f, a[i].down_b, g[i].down_b, r, eps, tol);
        snprintf(what, sizeof what, "%s: adapter %d up_w", name, i);
        kg_check(what, loss, &f, a[i].up_w, g[i].up_w, (size_t)H * r, eps, tol);
        snprintf(what, sizeof what, "%s: adapter %d up_b", name, i);
        kg_check(what, loss, &f, a[i].up_b, g[i].up_b, H, eps, tol);
    }
    free(x), free(G), free(dx), free(mem), free(f.ups), free(gbuf), free(g);
}

static void randomize(float *buf, size_t n, af_rng *rng) {
    /* larger than the 0.02 init so that the activation's curvature matters */
    kg_fill(buf, n, rng, 0.5f);
}

int main(void) {
    af_rng rng;
    af_rng_seed(&rng, 42);

    /* parameter table */
    param_desc p[ADAPTER_NPARAMS];
    adapter_params(p, 768, 48);
    ok(!strcmp(p[0].name, "adapter_down.0.weight") && p[0].shape[0] == 48 && p[0].shape[1] == 768 &&
           !strcmp(p[3].name, "adapter_up.bias") && p[3].decay == 0 &&
           p[3].offset + p[3].numel == adapter_nparams(768, 48),
       "parameter table: AdapterHub names, [out, in] shapes, covering the buffer");

    /* init: N(0, 0.02) weights, zero biases */
    {
        float *buf = malloc(sizeof(float) * adapter_nparams(768, 48));
        adapter a;
        adapter_carve(&a, buf, 768, 48, AF_ACT_RELU);
        for (size_t i = 0; i < adapter_nparams(768, 48); i++) buf[i] = 7;
        adapter_init(&a, &rng);
        double s = 0, s2 = 0;
        size_t n = 48 * 768;
        for (size_t i = 0; i < n; i++) s += a.up_w[i], s2 += (double)a.up_w[i] * a.up_w[i];
        double sd = sqrt(s2 / n - (s / n) * (s / n));
        int zero = 1;
        for (int i = 0; i < 48; i++) zero &= a.down_b[i] == 0;
        for (int i = 0; i < 768; i++) zero &= a.up_b[i] == 0;
        ok(fabs(sd - 0.02) < 0.001 && fabs(s / n) < 0.001 && zero,
           "init: weights N(0, 0.02) (sd %.4f), biases zero", sd);
        free(buf);
    }

    /* one adapter, each activation */
    const int acts[] = {AF_ACT_RELU, AF_ACT_GELU, AF_ACT_SWISH, AF_ACT_TANH};
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
        int r = 4;
        float *buf = malloc(sizeof(float) * adapter_nparams(H, r));
        adapter a;
        adapter_carve(&a, buf, H, r, acts[k]);
        randomize(buf, adapter_nparams(H, r), &rng);
        float x[M * H], up[M * H];
        kg_fill(x, M * H, &rng, 1.0f);
        float *mem = malloc(sizeof(float) * adapter_cache_floats(&a, 1, M));
        adapter_cache c;
        adapter_cache_carve(&c, mem, &a, 1, M);
        adapter_forward(up, &c, x, &a, M);
        double d = direct_maxdiff(up, x, &a, 1);
        ok(d < 1e-5, "%s: forward equals the direct formula (max diff %.2e)", act_name(acts[k]), d);
        char name[64];
        snprintf(name, sizeof name, "single %s", act_name(acts[k]));
        check_grads(name, &a, buf, 1, 1e-3f, 1e-2, &rng);
        free(buf), free(mem);
    }

    /* a stack of three with different bottlenecks and activations, carved for one sgemm */
    {
        int r[NS] = {4, 2, 3}, act[NS] = {AF_ACT_RELU, AF_ACT_SWISH, AF_ACT_TANH};
        size_t nw = 0;
        for (int i = 0; i < NS; i++) nw += adapter_nparams(H, r[i]);
        float *buf = malloc(sizeof(float) * nw);
        adapter a[NS];
        adapter_stack_carve(a, NS, buf, H, r, act);
        randomize(buf, nw, &rng);
        int contiguous = 1;
        for (int i = 1; i < NS; i++)
            contiguous &= a[i].down_w == a[i - 1].down_w + a[i - 1].r * H &&
                          a[i].down_b == a[i - 1].down_b + a[i - 1].r;
        param_desc q[ADAPTER_NPARAMS];
        adapter_stack_params(q, NS, 1, H, r);
        ok(contiguous && buf + q[2].offset == a[1].up_w && q[0].shape[0] == 2,
           "stack carve: down projections back to back, table offsets match");

        float x[M * H], ups[M * NS * H], ups2[M * NS * H];
        kg_fill(x, M * H, &rng, 1.0f);
        float *mem = malloc(sizeof(float) * adapter_cache_floats(a, NS, M));
        adapter_cache c;
        adapter_cache_carve(&c, mem, a, NS, M);
        adapter_stack_forward(ups, &c, x, a, NS, M);
        double d = direct_maxdiff(ups, x, a, NS);
        ok(d < 1e-5, "stack: forward equals each adapter's direct formula (max diff %.2e)", d);

        /* the same adapters carved one by one: the per-adapter path must agree */
        float *sep[NS];
        adapter b[NS];
        for (int i = 0; i < NS; i++) {
            sep[i] = malloc(sizeof(float) * adapter_nparams(H, r[i]));
            adapter_carve(&b[i], sep[i], H, r[i], act[i]);
            memcpy(b[i].down_w, a[i].down_w, sizeof(float) * r[i] * H);
            memcpy(b[i].down_b, a[i].down_b, sizeof(float) * r[i]);
            memcpy(b[i].up_w, a[i].up_w, sizeof(float) * r[i] * H);
            memcpy(b[i].up_b, a[i].up_b, sizeof(float) * H);
        }
        adapter_cache c2;
        float *mem2 = malloc(sizeof(float) * adapter_cache_floats(b, NS, M));
        adapter_cache_carve(&c2, mem2, b, NS, M);
        adapter_stack_forward(ups2, &c2, x, b, NS, M);
        ok(tap_maxdiff(ups, ups2, M * NS * H) < 1e-6, "stack: separate adapters give the same ups");

        /* backward: both paths, and accumulation */
        float G[M * NS * H], dx1[M * H] = {0}, dx2[M * H] = {0};
        kg_fill(G, M * NS * H, &rng, 1.0f);
        float *g1 = calloc(nw, sizeof(float));
        adapter ga[NS];
        adapter_stack_carve(ga, NS, g1, H, r, act);
        adapter_stack_backward(dx1, ga, &c, G, x, a, NS, M);
        float *gs[NS];
        adapter gb[NS];
        for (int i = 0; i < NS; i++) {
            gs[i] = calloc(adapter_nparams(H, r[i]), sizeof(float));
            adapter_carve(&gb[i], gs[i], H, r[i], act[i]);
        }
        adapter_stack_backward(dx2, gb, &c2, G, x, b, NS, M);
        double gd = 0;
        for (int i = 0; i < NS; i++) {
            gd = fmax(gd, tap_maxdiff(ga[i].down_w, gb[i].down_w, r[i] * H));
            gd = fmax(gd, tap_maxdiff(ga[i].down_b, gb[i].down_b, r[i]));
            gd = fmax(gd, tap_maxdiff(ga[i].up_w, gb[i].up_w, r[i] * H));
            gd = fmax(gd, tap_maxdiff(ga[i].up_b, gb[i].up_b, H));
        }
        ok(tap_maxdiff(dx1, dx2, M * H) < 1e-5 && gd < 1e-5,
           "stack: stacked and per-adapter backward agree (dx %.1e, grads %.1e)",
           tap_maxdiff(dx1, dx2, M * H), gd);
        float dx3[M * H];
        memcpy(dx3, dx1, sizeof dx3);
        float keep = ga[1].up_w[3];
        adapter_stack_backward(dx1, ga, &c, G, x, a, NS, M);
        double acc = 0;
        for (int i = 0; i < M * H; i++) acc = fmax(acc, fabs(dx1[i] - 2 * dx3[i]));
        ok(acc < 1e-5 && fabs(ga[1].up_w[3] - 2 * keep) < 1e-5,
           "backward accumulates into dx and weight gradients");
        /* frozen adapters, no dx: nothing to do, nothing touched */
        adapter_stack_backward(NULL, NULL, &c, G, x, a, NS, M);
        ok(1, "backward with dx = NULL and frozen adapters runs");

        check_grads("stack", a, buf, NS, 1e-3f, 1e-2, &rng);
        free(buf), free(mem), free(mem2), free(g1);
        for (int i = 0; i < NS; i++) free(sep[i]), free(gs[i]);
    }
    return done_testing();
}
