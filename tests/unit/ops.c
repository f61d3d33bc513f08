/* ops.c: every backward of lib/ops.c against finite differences, forwards against naive double
 * references, and the accumulate-into-gradients convention. */
#include "ops.h"

#include "gradcheck.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define FD_TOL 1e-2

static float *randn(af_rng *r, size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * af_rng_normal(r);
    return x;
}

static float *zeros(size_t n) {
    return calloc(n, sizeof(float));
}

/* ---- linear ---- */
typedef struct {
    float *out, *inp, *w, *b, *R;
    int M, K, N;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out, c->inp, c->w, c->b, c->M, c->K, c->N);
    return gc_dot(c->out, c->R, (size_t)c->M * c->N);
}

static void test_linear(af_rng *r) {
    lin_ctx c = {.M = 5, .K = 7, .N = 3};
    size_t MK = 35, NK = 21, MN = 15;
    c.inp = randn(r, MK, 1), c.w = randn(r, NK, 1), c.b = randn(r, 3, 1), c.R = randn(r, MN, 1);
    c.out = zeros(MN);
    lin_loss(&c);
    double worst = 0;
    for (int i = 0; i < c.M; i++)
        for (int j = 0; j < c.N; j++) {
            double s = c.b[j];
            for (int k = 0; k < c.K; k++) s += (double)c.inp[i * c.K + k] * c.w[j * c.K + k];
            worst = fmax(worst, fabs(s - c.out[i * c.N + j]));
        }
    ok(worst < 1e-5, "linear forward equals x·Wᵀ + b (max error %.2g)", worst);
    float *nob = zeros(MN);
    linear_forward(nob, c.inp, c.w, NULL, c.M, c.K, c.N);
    worst = 0;
    for (size_t i = 0; i < MN; i++) worst = fmax(worst, fabs(nob[i] + c.b[i % 3] - c.out[i]));
    ok(worst < 1e-5, "linear forward without bias is x·Wᵀ (%.2g)", worst);
    free(nob);
    float *ds = randn(r, MK, 1), *dz = zeros(MK);
    linear_backward_set(ds, c.R, c.w, c.M, c.K, c.N);
    linear_backward(dz, NULL, NULL, c.R, c.inp, c.w, c.M, c.K, c.N);
    ok(!memcmp(ds, dz, MK * 4), "linear_backward_set overwrites: = linear_backward into zeros");
    free(ds), free(dz);
    /* Gradients start from a non-zero value: backward must add to it, not overwrite. */
    float *di = randn(r, MK, 1), *dw = randn(r, NK, 1), *db = randn(r, 3, 1);
    float *di0 = malloc(MK * 4), *dw0 = malloc(NK * 4), *db0 = malloc(12);
    memcpy(di0, di, MK * 4), memcpy(dw0, dw, NK * 4), memcpy(db0, db, 12);
    linear_backward(di, dw, db, c.R, c.inp, c.w, c.M, c.K, c.N);
    for (size_t i = 0; i < MK; i++) di[i] -= di0[i];
    for (size_t i = 0; i < NK; i++) dw[i] -= dw0[i];
    for (size_t i = 0; i < 3; i++) db[i] -= db0[i];
    ok(gc_check(c.inp, di, MK, 100, 1e-2f, lin_loss, &c) < FD_TOL, "linear dinp (accumulated)");
    ok(gc_check(c.w, dw, NK, 100, 1e-2f, lin_loss, &c) < FD_TOL, "linear dw (accumulated)");
    ok(gc_check(c.b, db, 3, 100, 1e-2f, lin_loss, &c) < FD_TOL, "linear db (accumulated)");
    /* NULL gradients are skipped, the others still computed */
    memset(dw, 0, NK * 4);
    linear_backward(NULL, dw, NULL, c.R, c.inp, c.w, c.M, c.K, c.N);
    ok(gc_check(c.w, dw, NK, 100, 1e-2f, lin_loss, &c) < FD_TOL, "linear dw alone");
    free(c.inp), free(c.w), free(c.b), free(c.R), free(c.out);
    free(di), free(dw), free(db), free(di0), free(dw0), free(db0);
}

/* ---- layernorm ---- */
typedef struct {
    float *out, *inp, *w, *b, *R, *mean, *rstd;
    int M, C;
} ln_ctx;

static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->M, c->C, 1e-5f);
    return gc_dot(c->out, c->R, (size_t)c->M * c->C);
}

static void test_layernorm(af_rng *r) {
    ln_ctx c = {.M = 4, .C = 16};
    size_t n = 64;
    c.inp = randn(r, n, 2), c.w = randn(r, 16, 1), c.b = randn(r, 16, 1), c.R = randn(r, n, 1);
    for (int i = 0; i < 16; i++) c.inp[i] += 3; /* a row with a large mean */
    c.out = zeros(n), c.mean = zeros(4), c.rstd = zeros(4);
    ln_loss(&c);
    double worst = 0;
    for (int i = 0; i < c.M; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < c.C; j++) m += c.inp[i * 16 + j];
        m /= 16;
        for (int j = 0; j < c.C; j++) v += (c.inp[i * 16 + j] - m) * (c.inp[i * 16 + j] - m);
        v /= 16;
        for (int j = 0; j < c.C; j++) {
            double y = (c.inp[i * 16 + j] - m) / sqrt(v + 1e-5) * c.w[j] + c.b[j];
            worst = fmax(worst, fabs(y - c.out[i * 16 + j]));
        }
    }
    ok(worst < 1e-5, "layernorm forward equals the biased-variance definition (%.2g)", worst);
    float *di = zeros(n), *dw = zeros(16), *db = zeros(16);
    layernorm_backward(di, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, c.M, c.C);
    ok(gc_check(c.inp, di, n, 100, 1e-2f, ln_loss, &c) < FD_TOL, "layernorm dinp");
    ok(gc_check(c.w, dw, 16, 100, 1e-2f, ln_loss, &c) < FD_TOL, "layernorm dw");
    ok(gc_check(c.b, db, 16, 100, 1e-2f, ln_loss, &c) < FD_TOL, "layernorm db");
    free(c.inp), free(c.w), free(c.b), free(c.R), free(c.out), free(c.mean), free(c.rstd);
    free(di), free(dw), free(db);
}

/* The fused residual passes give the bits of the passes they replace (tails: C = 40). */
static void test_layernorm_fused(af_rng *r) {
    int M = 1000, C = 40; /* big enough to run on the pool */
    size_t n = (size_t)M * C;
    float *a = randn(r, n, 1), *b = randn(r, n, 1), *w = randn(r, C, 1), *bias = randn(r, C, 1);
    float *dy = randn(r, n, 1), *add = randn(r, n, 1);
    float *sum = zeros(n), *out = zeros(n), *mean = zeros(M), *rstd = zeros(M);
    float *sum2 = zeros(n), *out2 = zeros(n), *mean2 = zeros(M), *rstd2 = zeros(M);
    vec_add2(sum, a, b, n);
    layernorm_forward(out, mean, rstd, sum, w, bias, M, C, 1e-12f);
    layernorm_forward_sum(out2, mean2, rstd2, sum2, a, b, w, bias, M, C, 1e-12f);
    ok(!memcmp(out, out2, n * 4) && !memcmp(sum, sum2, n * 4) && !memcmp(mean, mean2, M * 4) &&
           !memcmp(rstd, rstd2, M * 4),
       "layernorm_forward_sum = vec_add2 + layernorm_forward, bit for bit");
    memcpy(sum2, a, n * 4);
    layernorm_forward_sum(out2, NULL, NULL, sum2, sum2, b, w, bias, M, C, 1e-12f);
    ok(!memcmp(out, out2, n * 4) && !memcmp(sum, sum2, n * 4), "layernorm_forward_sum in place");
    float *d = zeros(n), *g1 = zeros(n), *g2 = zeros(n);
    layernorm_backward(d, NULL, NULL, dy, sum, w, mean, rstd, M, C);
    for (size_t i = 0; i < n; i++) g1[i] = 1.5f;
    layernorm_backward_set(g1, g2, NULL, dy, a, b, w, mean, rstd, M, C);
    ok(!memcmp(g1, d, n * 4) && !memcmp(g2, d, n * 4),
       "layernorm_backward_set of LN(a + b) = zero + layernorm_backward, into both outputs");
    float *want = zeros(n);
    vec_add2(want, add, d, n);
    layernorm_backward_set(g1, NULL, add, dy, sum, NULL, w, mean, rstd, M, C);
    ok(!memcmp(g1, want, n * 4), "layernorm_backward_set with a residual gradient added");
    free(a), free(b), free(w), free(bias), free(dy), free(add), free(sum), free(out), free(mean);
    free(rstd), free(sum2), free(out2), free(mean2), free(rstd2), free(d), free(g1), free(g2);
    free(want);
}

static void test_row_kernels(af_rng *r) {
    int n = 77; /* two 32-wide steps and a tail */
    float *a = randn(r, n, 1), *b = randn(r, n, 1), *y = randn(r, n, 1), *y2 = malloc(n * 4);
    double want = 0;
    for (int i = 0; i < n; i++) want += (double)a[i] * b[i];
    ok(fabs(vec_dot(a, b, n) - want) < 1e-5 * (1 + fabs(want)), "vec_dot");
    ok(vec_dot(a, b, 0) == 0 && vec_dot(a, b, 5) != 0, "vec_dot: empty, short");
    memcpy(y2, y, n * 4);
    vec_axpy(y, 0.37f, a, n);
    int same = 1;
    for (int i = 0; i < n; i++) same &= y[i] == y2[i] + 0.37f * a[i];
    ok(same, "vec_axpy: y + a·x, rounded as the scalar loop rounds it");
    float p3[3] = {0.2f, -1.3f, 0.7f}, *x3 = randn(r, 3 * (size_t)n, 1), *o = zeros(n);
    memset(y2, 0, n * 4);
    for (int i = 0; i < 3; i++) vec_axpy(y2, p3[i], x3 + (size_t)i * n, n);
    vec_mix(o, p3, x3, 3, n);
    ok(!memcmp(o, y2, n * 4), "vec_mix = vec_axpy of each row into zeros, bit for bit");
    free(x3), free(o);
    free(a), free(b), free(y), free(y2);
}

/* ---- activations ---- */
typedef struct {
    float *out, *inp, *R;
    size_t n;
    int act;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    act_forward(c->out, c->inp, c->n, c->act);
    return gc_dot(c->out, c->R, c->n);
}

static void test_activations(af_rng *r) {
    static const int acts[] = {AF_ACT_RELU,  AF_ACT_GELU, AF_ACT_GELU_TANH,
                               AF_ACT_SWISH, AF_ACT_TANH, AF_ACT_SIGMOID};
    /* values at x = 1 from torch: gelu, gelu(approximate="tanh"), silu, tanh, sigmoid */
    static const double at1[] = {1.0,
                                 0.8413447460685429,
                                 0.8411919906082768,
                                 0.7310585786300049,
                                 0.7615941559557649,
                                 0.7310585786300049};
    act_ctx c = {.n = 64};
    c.inp = randn(r, c.n, 2), c.R = randn(r, c.n, 1), c.out = zeros(c.n);
    /* keep relu's kink out of the finite-difference step */
    for (size_t i = 0; i < c.n; i++)
        if (fabsf(c.inp[i]) < 0.05f) c.inp[i] = 0.1f;
    float *d = zeros(c.n);
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
        c.act = acts[k];
        float one = 1, y;
        act_forward(&y, &one, 1, c.act);
        ok(fabs(y - at1[k]) < 1e-6, "%s(1) = %.7f (torch %.7f)", act_name(c.act), y, at1[k]);
        memset(d, 0, c.n * sizeof(float));
        act_backward(d, c.R, c.inp, c.n, c.act);
        ok(gc_check(c.inp, d, c.n, 100, 1e-3f, act_loss, &c) < FD_TOL, "%s backward",
           act_name(c.act));
        /* the frozen path: act' stored by the forward, then dout ⊙ act' = act_backward_set */
        size_t n = 5000; /* several chunks, a tail */
        float *x = randn(r, n, 2), *dy = randn(r, n, 1), *y1 = zeros(n), *y2 = zeros(n);
        float *g1 = zeros(n), *dv = malloc(n * 4);
        act_forward(y1, x, n, c.act);
        act_backward_set(g1, dy, x, n, c.act);
        memcpy(dv, x, n * 4);
        act_forward_deriv(y2, dv, dv, n, c.act); /* in place, as bert uses it */
        vec_mul(dv, dy, dv, n);
        size_t differ = 0; /* by value: relu's dout·0 may be -0 where the backward gives +0 */
        for (size_t i = 0; i < n; i++) differ += y1[i] != y2[i] || g1[i] != dv[i];
        ok(differ == 0,
           "%s: act_forward_deriv, then dout * act' = act_forward, act_backward_set exactly",
           act_name(c.act));
        free(x), free(dy), free(y1), free(y2), free(g1), free(dv);
    }
    /* GELU's Φ (Abramowitz & Stegun 7.1.26) against erf in double, over [-10, 10] */
    int ng = 20001;
    float *gx = malloc(ng * 4), *gy = malloc(ng * 4), *gd = malloc(ng * 4);
    for (int i = 0; i < ng; i++) gx[i] = -10.0f + 20.0f * i / (ng - 1);
    act_forward_deriv(gy, gd, gx, ng, AF_ACT_GELU);
    double wy = 0, wd = 0;
    for (int i = 0; i < ng; i++) {
        double x = gx[i], cdf = 0.5 * erfc(-x / sqrt(2.0)), pdf = exp(-0.5 * x * x) / sqrt(2 * M_PI);
        wy = fmax(wy, fabs(gy[i] - x * cdf) / fmax(1, fabs(x)));
        wd = fmax(wd, fabs(gd[i] - (cdf + x * pdf)) / fmax(1, fabs(x)));
    }
    ok(wy < 3e-7 && wd < 3e-7, "gelu and its derivative within 3e-7·max(1, |x|) of exact (%.1e, %.1e)",
       wy, wd);
    free(gx), free(gy), free(gd);
    ok(act_parse("gelu") == AF_ACT_GELU && act_parse("gelu_new") == AF_ACT_GELU_TANH &&
           act_parse("gelu_pytorch_tanh") == AF_ACT_GELU_TANH && act_parse("nope") == -1,
       "act_parse maps HF names");
    free(c.inp), free(c.R), free(c.out), free(d);
}

/* ---- softmax ---- */
typedef struct {
    float *out, *inp, *R;
    int M, N;
} sm_ctx;

static double sm_loss(void *p) {
    sm_ctx *c = p;
    softmax_forward(c->out, c->inp, c->M, c->N);
    return gc_dot(c->out, c->R, (size_t)c->M * c->N);
}

static void test_softmax(af_rng *r) {
    sm_ctx c = {.M = 3, .N = 9};
    c.inp = randn(r, 27, 3), c.R = randn(r, 27, 1), c.out = zeros(27);
    c.inp[0] = 80; /* large logits must not overflow */
    sm_loss(&c);
    double s = 0;
    for (int j = 0; j < 9; j++) s += c.out[j];
    ok(fabs(s - 1) < 1e-6 && c.out[0] > 0.99f, "softmax rows sum to 1, stable for large logits");
    c.inp[0] = 1;
    sm_loss(&c);
    float *d = zeros(27);
    softmax_backward(d, c.R, c.out, c.M, c.N);
    ok(gc_check(c.inp, d, 27, 100, 1e-2f, sm_loss, &c) < FD_TOL, "softmax backward");
    free(c.inp), free(c.R), free(c.out), free(d);
}

/* ---- dropout ---- */
typedef struct {
    float *out, *inp, *R;
    uint8_t *mask;
    size_t n;
    float p;
} do_ctx;

static double do_loss(void *p) {
    do_ctx *c = p;
    af_rng r;
    af_rng_seed(&r, 5); /* the same mask every call */
    dropout_forward(c->out, c->mask, c->inp, c->n, c->p, &r);
    return gc_dot(c->out, c->R, c->n);
}

static void test_dropout(af_rng *r) {
    do_ctx c = {.n = 20000, .p = 0.3f};
    c.inp = randn(r, c.n, 1), c.R = randn(r, c.n, 1), c.out = zeros(c.n), c.mask = malloc(c.n);
    do_loss(&c);
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < c.n; i++) {
        kept += c.mask[i];
        float want = c.mask[i] ? c.inp[i] / 0.7f : 0.0f;
        bad += fabsf(c.out[i] - want) > 1e-6f * (1 + fabsf(want));
    }
    /* Bernoulli(0.7) over 20000: sd 65, so ±300 is > 4.5 sd */
    ok(kept > 14000 - 300 && kept < 14000 + 300, "dropout keeps ~70%% (%zu of 20000)", kept);
    ok(bad == 0, "dropout scales kept values by 1/(1-p)");
    uint8_t *m1 = malloc(c.n);
    memcpy(m1, c.mask, c.n);
    do_loss(&c);
    ok(memcmp(m1, c.mask, c.n) == 0, "the same seed gives the same mask");
    float *d = zeros(c.n);
    dropout_backward(d, c.R, c.mask, c.n, c.p);
    /* dropout_apply: the same mask, hashed from the seed dropout_forward drew, never stored */
    af_rng s5;
    af_rng_seed(&s5, 5);
    uint64_t seed = af_rng_u64(&s5);
    float *a = zeros(c.n), *da = zeros(c.n);
    dropout_apply(a, c.inp, c.n, c.p, seed);
    dropout_apply(da, c.R, c.n, c.p, seed);
    ok(memcmp(a, c.out, c.n * 4) == 0, "dropout_apply from the seed = dropout_forward's output");
    ok(memcmp(da, d, c.n * 4) == 0, "dropout_apply on the gradient = dropout_backward");
    memcpy(a, c.inp, c.n * 4);
    dropout_apply(a, a, c.n, c.p, seed);
    ok(memcmp(a, c.out, c.n * 4) == 0, "dropout_apply in place");
    dropout_apply(a, c.inp, c.n, 0, seed);
    ok(memcmp(a, c.inp, c.n * 4) == 0, "dropout_apply with p = 0 copies");
    free(a), free(da);
    c.n = 200; /* the check needs only a few entries; the mask prefix is the same */
    ok(gc_check(c.inp, d, c.n, 200, 1e-2f, do_loss, &c) < FD_TOL, "dropout backward");
    c.p = 0;
    memset(d, 0, c.n * sizeof(float));
    dropout_forward(c.out, c.mask, c.inp, c.n, 0, r);
    dropout_backward(d, c.R, c.mask, c.n, 0);
    ok(memcmp(c.out, c.inp, c.n * 4) == 0 && memcmp(d, c.R, c.n * 4) == 0,
       "dropout with p = 0 is the identity both ways");
    free(c.inp), free(c.R), free(c.out), free(c.mask), free(m1), free(d);
}

/* ---- attention ---- */
typedef struct {
    float *ctx, *probs, *scratch, *qkv, *R;
    const int *mask;
    int B, S, NH, D;
    float p;
} at_ctx;

static double at_loss(void *p) {
    at_ctx *c = p;
    attention_forward(c->ctx, c->probs, c->scratch, c->qkv, c->mask, c->B, c->S, c->NH, c->D, c->p,
                      9); /* the same masks every call */
    return gc_dot(c->ctx, c->R, (size_t)c->B * c->S * c->NH * c->D);
}

/* Naive double reference of the masked attention (no dropout). */
static double attention_ref_error(const at_ctx *c) {
    int H = c->NH * c->D, ld = 3 * H;
    double worst = 0;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < c->S; i++) {
                double s[64], mx = -1e300, z = 0;
                const float *q = c->qkv + (size_t)(b * c->S + i) * ld + h * c->D;
                for (int j = 0; j < c->S; j++) {
                    const float *k = c->qkv + (size_t)(b * c->S + j) * ld + H + h * c->D;
                    double d = 0;
                    for (int t = 0; t < c->D; t++) d += (double)q[t] * k[t];
                    s[j] = c->mask[b * c->S + j] ? d / sqrt(c->D) : -INFINITY;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < c->S; j++) z += (s[j] = exp(s[j] - mx));
                for (int t = 0; t < c->D; t++) {
                    double o = 0;
                    for (int j = 0; j < c->S; j++)
                        o += s[j] / z * c->qkv[(size_t)(b * c->S + j) * ld + 2 * H + h * c->D + t];
                    double got = c->ctx[(size_t)(b * c->S + i) * H + h * c->D + t];
                    worst = fmax(worst, fabs(o - got));
                }
            }
    return worst;
}

static void test_attention(af_rng *r) {
    static const int mask[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    at_ctx c = {.B = 2, .S = 6, .NH = 2, .D = 4, .mask = mask};
    int H = 8, M = 12;
    size_t P = (size_t)c.B * c.NH * c.S * c.S;
    c.qkv = randn(r, (size_t)M * 3 * H, 1), c.R = randn(r, (size_t)M * H, 1);
    c.ctx = zeros((size_t)M * H), c.probs = zeros(P), c.scratch = zeros(2 * 36);
    at_loss(&c);
    ok(attention_ref_error(&c) < 1e-5, "attention forward equals the masked reference");
    /* Padding never leaks: changing padded tokens' keys and values changes no real token. */
    float *before = malloc((size_t)M * H * 4);
    memcpy(before, c.ctx, (size_t)M * H * 4);
    for (int t = 10; t < 12; t++)
        for (int j = H; j < 3 * H; j++) c.qkv[(size_t)t * 3 * H + j] += 100;
    at_loss(&c);
    ok(memcmp(before, c.ctx, (size_t)M * H * 4) == 0,
       "changing padded keys/values leaves every output bit-identical");
    ok(c.probs[(size_t)(1 * 2 + 0) * 36 + 0 * 6 + 4] == 0, "masked keys get probability 0");
    for (int t = 10; t < 12; t++)
        for (int j = H; j < 3 * H; j++) c.qkv[(size_t)t * 3 * H + j] -= 100;
    at_loss(&c);
    float *d = zeros((size_t)M * 3 * H);
    attention_backward(d, c.scratch, c.R, c.qkv, c.probs, NULL, c.B, c.S, c.NH, c.D, c.p, 9);
    ok(gc_check(c.qkv, d, (size_t)M * 3 * H, 400, 1e-2f, at_loss, &c) < FD_TOL,
       "attention backward (q, k, v), with padding");
    int padgrad = 0;
    for (int t = 10; t < 12; t++)
        for (int j = H; j < 3 * H; j++) padgrad |= d[(size_t)t * 3 * H + j] != 0;
    ok(!padgrad, "padded keys and values get no gradient");
    float *nodrop = malloc((size_t)M * H * 4);
    memcpy(nodrop, c.ctx, (size_t)M * H * 4);
    c.p = 0.25f;
    at_loss(&c);
    for (int i = 0; i < M * 3 * H; i++) d[i] = 7; /* it overwrites */
    attention_backward(d, c.scratch, c.R, c.qkv, c.probs, NULL, c.B, c.S, c.NH, c.D, c.p, 9);
    ok(gc_check(c.qkv, d, (size_t)M * 3 * H, 400, 1e-2f, at_loss, &c) < FD_TOL,
       "attention backward with dropout on the probabilities (the mask hashed again)");
    float *d2 = zeros((size_t)M * 3 * H);
    at_loss(&c);
    attention_backward(d2, c.scratch, c.R, c.qkv, NULL, c.mask, c.B, c.S, c.NH, c.D, c.p, 9);
    attention_backward(d, c.scratch, c.R, c.qkv, c.probs, NULL, c.B, c.S, c.NH, c.D, c.p, 9);
    ok(!memcmp(d, d2, (size_t)M * 3 * H * 4),
       "attention backward without the probabilities (computed again, with padding): same bits");
    free(d2);
    /* ctx = dropout(P)·V: rows whose probabilities lost some mass differ from the p = 0 rows */
    size_t changed = 0;
    for (int t = 0; t < M; t++) changed += memcmp(nodrop + (size_t)t * H, c.ctx + (size_t)t * H, H * 4) != 0;
    ok(changed > 0, "attention dropout changes the context (%zu of %d rows)", changed, M);
    /* the mask is the pair's own: the same pair under another seed gets another mask */
    float *other = malloc((size_t)M * H * 4);
    memcpy(other, c.ctx, (size_t)M * H * 4);
    attention_forward(c.ctx, c.probs, c.scratch, c.qkv, c.mask, c.B, c.S, c.NH, c.D, c.p, 10);
    ok(memcmp(other, c.ctx, (size_t)M * H * 4) != 0, "another seed, other masks");
    free(nodrop), free(other);
    free(c.qkv), free(c.R), free(c.ctx), free(c.probs), free(c.scratch);
    free(before), free(d);
}

/* A NaN reaching an activation comes out NaN (PyTorch's relu propagates it): swallowed, it would
 * turn a broken weight into a plausible prediction. 33 values: every vector lane and a tail. */
static void test_nan_propagates(void) {
    for (int act = AF_ACT_RELU; act <= AF_ACT_SIGMOID; act++) {
        float x[33], y[33], d[33];
        for (int i = 0; i < 33; i++) x[i] = i % 3 ? (float)(i - 16) / 4 : NAN;
        act_forward(y, x, 33, act);
        int ok1 = 1;
        for (int i = 0; i < 33; i++) ok1 &= (i % 3 != 0) || isnan(y[i]);
        act_forward_deriv(y, d, x, 33, act);
        for (int i = 0; i < 33; i++) ok1 &= (i % 3 != 0) || isnan(y[i]);
        ok(ok1, "activation %d: NaN in, NaN out", act);
    }
}

int main(void) {
    af_rng r;
    af_rng_seed(&r, 42);
    test_linear(&r);
    test_layernorm(&r);
    test_layernorm_fused(&r);
    test_row_kernels(&r);
    test_activations(&r);
    test_softmax(&r);
    test_dropout(&r);
    test_attention(&r);
    test_nan_propagates();
    return done_testing();
}
