/* ops.c: elementary layers; see ops.h for the conventions (outputs first, backward accumulates). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void linear_forward(float *out, const float *inp, const float *w, const float *b, int M, int K,
                    int N) {
    if (b) {
        for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, b, N * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, inp, K, w, K, b ? 1.0f : 0.0f,
                out, N);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int M, int K, int N) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, w, K, 1.0f,
                    dinp, K);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, inp, K, 1.0f,
                    dw, K);
    if (db)
        for (int i = 0; i < M; i++) {
            const float *d = dout + (size_t)i * N;
            for (int j = 0; j < N; j++) db[j] += d[j];
        }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        /* two passes in float with a double accumulator: matches PyTorch to ~1e-7 */
        double s = 0;
        for (int j = 0; j < C; j++) s += x[j];
        float m = (float)(s / C);
        double v = 0;
        for (int j = 0; j < C; j++) {
            float d = x[j] - m;
            v += (double)d * d;
        }
        float r = 1.0f / sqrtf((float)(v / C) + eps);
        for (int j = 0; j < C; j++) y[j] = (x[j] - m) * r * w[j] + b[j];
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = r;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
        float m = mean[i], r = rstd[i];
        /* dxhat = dy·w; dx = r·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) */
        double s1 = 0, s2 = 0;
        for (int j = 0; j < C; j++) {
            float xh = (x[j] - m) * r, dxh = dy[j] * w[j];
            s1 += dxh;
            s2 += (double)dxh * xh;
            if (dw) dw[j] += dy[j] * xh;
            if (db) db[j] += dy[j];
        }
        if (!dinp) continue;
        float a = (float)(s1 / C), c = (float)(s2 / C);
        float *dx = dinp + (size_t)i * C;
        for (int j = 0; j < C; j++) {
            float xh = (x[j] - m) * r;
            dx[j] += r * (dy[j] * w[j] - a - xh * c);
        }
    }
}

static const struct {
    const char *name;
    int act;
} act_names[] = {{"relu", AF_ACT_RELU},         {"gelu", AF_ACT_GELU},
                 {"gelu_new", AF_ACT_GELU_TANH}, {"gelu_pytorch_tanh", AF_ACT_GELU_TANH},
                 {"gelu_fast", AF_ACT_GELU_TANH}, {"swish", AF_ACT_SWISH},
                 {"silu", AF_ACT_SWISH},         {"tanh", AF_ACT_TANH},
                 {"sigmoid", AF_ACT_SIGMOID}};

int act_parse(const char *name) {
    for (size_t i = 0; i < sizeof act_names / sizeof *act_names; i++)
        if (!strcmp(name, act_names[i].name)) return act_names[i].act;
    return -1;
}

const char *act_name(int act) {
    for (size_t i = 0; i < sizeof act_names / sizeof *act_names; i++)
        if (act_names[i].act == act) return act_names[i].name;
    return "?";
}

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

void act_forward(float *out, const float *inp, size_t n, int act) {
    switch (act) {
    case AF_ACT_RELU:
        for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
        break;
    case AF_ACT_GELU:
        for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * INV_SQRT_2));
        break;
    case AF_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
        }
        break;
    case AF_ACT_SWISH:
        for (size_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + expf(-inp[i]));
        break;
    case AF_ACT_TANH:
        for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
        break;
    case AF_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + expf(-inp[i]));
        break;
    }
}

void act_backward(float *dinp, const float *dout, const float *inp, size_t n, int act) {
    switch (act) {
    case AF_ACT_RELU:
        for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0 ? dout[i] : 0;
        break;
    case AF_ACT_GELU:
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + erff(x * INV_SQRT_2));
            float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
            dinp[i] += dout[i] * (cdf + x * pdf);
        }
        break;
    case AF_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
            float t = tanhf(u);
            float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
            dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
        }
        break;
    case AF_ACT_SWISH:
        for (size_t i = 0; i < n; i++) {
            float s = 1.0f / (1.0f + expf(-inp[i]));
            dinp[i] += dout[i] * (s + inp[i] * s * (1.0f - s));
        }
        break;
    case AF_ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = tanhf(inp[i]);
            dinp[i] += dout[i] * (1.0f - t * t);
        }
        break;
    case AF_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            float s = 1.0f / (1.0f + expf(-inp[i]));
            dinp[i] += dout[i] * s * (1.0f - s);
        }
        break;
    }
}

void softmax_forward(float *out, const float *inp, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * N;
        float *y = out + (size_t)i * N;
        float mx = -INFINITY;
        for (int j = 0; j < N; j++) mx = x[j] > mx ? x[j] : mx;
        float s = 0;
        for (int j = 0; j < N; j++) s += (y[j] = expf(x[j] - mx));
        float inv = 1.0f / s;
        for (int j = 0; j < N; j++) y[j] *= inv;
    }
}

void softmax_backward(float *dinp, const float *dout, const float *out, int M, int N) {
    for (int i = 0; i < M; i++) {
        const float *dy = dout + (size_t)i * N, *y = out + (size_t)i * N;
        float *dx = dinp + (size_t)i * N;
        float dot = 0;
        for (int j = 0; j < N; j++) dot += dy[j] * y[j];
        for (int j = 0; j < N; j++) dx[j] += y[j] * (dy[j] - dot);
    }
}

void dropout_forward(float *out, uint8_t *mask, const float *inp, size_t n, float p, af_rng *rng) {
    if (p <= 0 || !mask) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = af_rng_uniform(rng) >= p;
        out[i] = mask[i] ? inp[i] * scale : 0.0f;
    }
}

void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, size_t n, float p) {
    if (p <= 0 || !mask) {
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        if (mask[i]) dinp[i] += dout[i] * scale;
}

void vec_add(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void vec_add2(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* HF adds finfo(float32).min rather than -inf: a fully masked row then stays finite (uniform)
 * instead of NaN, and exp() of a masked score underflows to exactly 0, so padding never leaks. */
#define ATT_MASKED (-3.4028234663852886e38f)

void attention_forward(float *ctx, float *probs, uint8_t *dmask, float *scratch, const float *qkv,
                       const int *key_mask, int B, int S, int NH, int D, float p, af_rng *rng) {
    const int H = NH * D, ld = 3 * H;
    const float alpha = 1.0f / sqrtf((float)D);
    const size_t SS = (size_t)S * S;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * S * ld, *k = q + H, *v = q + 2 * H;
        const int *km = key_mask ? key_mask + (size_t)b * S : NULL;
        for (int h = 0; h < NH; h++) {
            float *P = probs + ((size_t)b * NH + h) * SS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, alpha, q + h * D, ld,
                        k + h * D, ld, 0.0f, P, S);
            if (km)
                for (int i = 0; i < S; i++)
                    for (int j = 0; j < S; j++)
                        if (!km[j]) P[(size_t)i * S + j] += ATT_MASKED;
            softmax_forward(P, P, S, S);
            const float *Pd = P;
            if (dmask && p > 0) {
                dropout_forward(scratch, dmask + ((size_t)b * NH + h) * SS, P, SS, p, rng);
                Pd = scratch;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, 1.0f, Pd, S, v + h * D,
                        ld, 0.0f, ctx + (size_t)b * S * H + h * D, H);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dctx, const float *qkv,
                        const float *probs, const uint8_t *dmask, int B, int S, int NH, int D,
                        float p) {
    const int H = NH * D, ld = 3 * H;
    const float alpha = 1.0f / sqrtf((float)D);
    const size_t SS = (size_t)S * S;
    const int drop = dmask && p > 0;
    const float scale = drop ? 1.0f / (1.0f - p) : 1.0f;
    float *Pd = scratch, *dS = scratch + SS;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * S * ld, *k = q + H, *v = q + 2 * H;
        float *dq = dqkv + (size_t)b * S * ld, *dk = dq + H, *dv = dq + 2 * H;
        const float *dc = dctx + (size_t)b * S * H;
        for (int h = 0; h < NH; h++) {
            const float *P = probs + ((size_t)b * NH + h) * SS;
            const uint8_t *mk = drop ? dmask + ((size_t)b * NH + h) * SS : NULL;
            const float *Pv = P;
            if (drop) {
                for (size_t i = 0; i < SS; i++) Pd[i] = mk[i] ? P[i] * scale : 0.0f;
                Pv = Pd;
            }
            /* dV += dropout(P)ᵀ·dctx;  d dropout(P) = dctx·Vᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, S, 1.0f, Pv, S, dc + h * D, H,
                        1.0f, dv + h * D, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, 1.0f, dc + h * D, H,
                        v + h * D, ld, 0.0f, dS, S);
            if (drop)
                for (size_t i = 0; i < SS; i++) dS[i] = mk[i] ? dS[i] * scale : 0.0f;
            /* softmax backward in place: dS = P ⊙ (dP − Σ dP⊙P); masked keys have P = 0 */
            for (int i = 0; i < S; i++) {
                float *d = dS + (size_t)i * S;
                const float *y = P + (size_t)i * S;
                float dot = 0;
                for (int j = 0; j < S; j++) dot += d[j] * y[j];
                for (int j = 0; j < S; j++) d[j] = y[j] * (d[j] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, alpha, dS, S, k + h * D,
                        ld, 1.0f, dq + h * D, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, S, alpha, dS, S, q + h * D, ld,
                        1.0f, dk + h * D, ld);
        }
    }
}
