/* adapter.c: bottleneck adapters, alone or stacked on one input; see adapter.h. */
#include "adapter.h"

#include <cblas.h>
#include <string.h>

#include "ops.h"

size_t adapter_nparams(int H, int r) {
    return 2 * (size_t)H * r + r + H;
}

static size_t sum_r(int N, int upto, const int *r) {
    size_t s = 0;
    for (int i = 0; i < upto && i < N; i++) s += r[i];
    return s;
}

int adapter_stack_params(param_desc out[ADAPTER_NPARAMS], int N, int i, int H, const int *r) {
    size_t R = sum_r(N, N, r), Ri = sum_r(N, i, r), ri = r[i];
    size_t dw = R * H, db = dw + R, uw = db + R * H;
    out[0] = (param_desc){"adapter_down.0.weight", 2, {ri, H}, Ri * H, ri * H, 1, 1};
    out[1] = (param_desc){"adapter_down.0.bias", 1, {ri, 0}, dw + Ri, ri, 0, 1};
    out[2] = (param_desc){"adapter_up.weight", 2, {H, ri}, db + Ri * H, H * ri, 1, 1};
    out[3] = (param_desc){"adapter_up.bias", 1, {H, 0}, uw + (size_t)i * H, H, 0, 1};
    return ADAPTER_NPARAMS;
}

int adapter_params(param_desc out[ADAPTER_NPARAMS], int H, int r) {
    return adapter_stack_params(out, 1, 0, H, &r);
}

void adapter_stack_carve(adapter *a, int N, float *buf, int H, const int *r, const int *act) {
    for (int i = 0; i < N; i++) {
        param_desc p[ADAPTER_NPARAMS];
        adapter_stack_params(p, N, i, H, r);
        a[i] = (adapter){H,
                         r[i],
                         act[i],
                         buf + p[0].offset,
                         buf + p[1].offset,
                         buf + p[2].offset,
                         buf + p[3].offset};
    }
}

void adapter_carve(adapter *a, float *buf, int H, int r, int act) {
    adapter_stack_carve(a, 1, buf, H, &r, &act);
}

void adapter_init(adapter *a, af_rng *rng) {
    size_t n = (size_t)a->r * a->H;
    for (size_t i = 0; i < n; i++) a->down_w[i] = 0.02f * af_rng_normal(rng);
    for (size_t i = 0; i < n; i++) a->up_w[i] = 0.02f * af_rng_normal(rng);
    memset(a->down_b, 0, a->r * sizeof(float));
    memset(a->up_b, 0, a->H * sizeof(float));
}

static int total_r(const adapter *a, int N) {
    int R = 0;
    for (int i = 0; i < N; i++) R += a[i].r;
    return R;
}

size_t adapter_cache_floats(const adapter *a, int N, int M) {
    return 4 * (size_t)M * total_r(a, N);
}

void adapter_cache_carve(adapter_cache *c, float *mem, const adapter *a, int N, int M) {
    size_t n = (size_t)M * total_r(a, N);
    *c = (adapter_cache){M, total_r(a, N), mem, mem + n, mem + 2 * n, mem + 3 * n};
}

/* Whether the N down projections (weights and biases) sit back to back, so that together they
 * are one (R, H) matrix and one (R) vector. */
static int down_stacked(const adapter *a, int N) {
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        if (a[i].down_w != a[0].down_w + off * a[0].H || a[i].down_b != a[0].down_b + off) return 0;
        off += a[i].r;
    }
    return 1;
}

static int same_act(const adapter *a, int N) {
    for (int i = 1; i < N; i++)
        if (a[i].act != a[0].act) return 0;
    return 1;
}

void adapter_stack_forward(float *ups, adapter_cache *c, const float *x, const adapter *a, int N,
                           int M) {
    int H = a[0].H, R = c->R;
    size_t ldu = (size_t)N * H;
    if (down_stacked(a, N)) {
        linear_forward(c->pre, x, a[0].down_w, a[0].down_b, M, H, R);
    } else {
        for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++)
            linear_forward_ld(c->pre + Ri, R, x, H, a[i].down_w, a[i].down_b, M, H, a[i].r);
    }
    if (same_act(a, N)) {
        act_forward(c->act, c->pre, (size_t)M * R, a[0].act);
    } else {
        for (int m = 0; m < M; m++)
            for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++)
                act_forward(c->act + (size_t)m * R + Ri, c->pre + (size_t)m * R + Ri, a[i].r,
                            a[i].act);
    }
    /* Each up projection writes its own column block of ups[M, N, H] (row stride N·H). */
    for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++) {
        linear_forward_ld(ups + (size_t)i * H, (int)ldu, c->act + Ri, R, a[i].up_w, a[i].up_b, M,
                          a[i].r, H);
    }
}

void adapter_stack_backward(float *dx, adapter *grads, adapter_cache *c, const float *dups,
                            const float *x, const adapter *a, int N, int M) {
    int H = a[0].H, R = c->R;
    size_t ldu = (size_t)N * H;
    for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++) {
        const float *du = dups + (size_t)i * H;
        /* dact_i = dup_i · W_up_i */
        gemm(0, 0, M, a[i].r, H, 1.0f, du, (int)ldu,
                    a[i].up_w, a[i].r, 0.0f, c->dact + Ri, R);
        if (!grads) continue;
        gemm(1, 0, H, a[i].r, M, 1.0f, du, (int)ldu,
                    c->act + Ri, R, 1.0f, grads[i].up_w, a[i].r);
        for (int m = 0; m < M; m++) vec_add(grads[i].up_b, du + (size_t)m * ldu, H);
    }
    if (same_act(a, N)) {
        act_backward_set(c->dpre, c->dact, c->pre, (size_t)M * R, a[0].act);
    } else {
        memset(c->dpre, 0, (size_t)M * R * sizeof(float));
        for (int m = 0; m < M; m++)
            for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++) {
                size_t o = (size_t)m * R + Ri;
                act_backward(c->dpre + o, c->dact + o, c->pre + o, a[i].r, a[i].act);
            }
    }
    if (down_stacked(a, N) && (!grads || down_stacked(grads, N))) {
        linear_backward(dx, grads ? grads[0].down_w : NULL, grads ? grads[0].down_b : NULL, c->dpre,
                        x, a[0].down_w, M, H, R);
        return;
    }
    for (int i = 0, Ri = 0; i < N; Ri += a[i].r, i++) {
        const float *dp = c->dpre + Ri;
        if (dx)
            gemm(0, 0, M, H, a[i].r, 1.0f, dp, R,
                        a[i].down_w, H, 1.0f, dx, H);
        if (!grads) continue;
        gemm(1, 0, a[i].r, H, M, 1.0f, dp, R, x, H, 1.0f,
                    grads[i].down_w, H);
        for (int m = 0; m < M; m++)
            for (int j = 0; j < a[i].r; j++) grads[i].down_b[j] += dp[(size_t)m * R + j];
    }
}

void adapter_forward(float *up, adapter_cache *c, const float *x, const adapter *a, int M) {
    adapter_stack_forward(up, c, x, a, 1, M);
}

void adapter_backward(float *dx, adapter *grad, adapter_cache *c, const float *dup, const float *x,
                      const adapter *a, int M) {
    adapter_stack_backward(dx, grad, c, dup, x, a, 1, M);
}
