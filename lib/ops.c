/* ops.c: elementary layers; see ops.h for the conventions (outputs first, backward accumulates).
 *
 * Speed: every matrix product goes through gemm, which cuts its output between the threads of
 * af's pool (OpenBLAS itself runs single-threaded, so the two never fight over the cores); the
 * elementwise passes split their rows the same way and use AVX-512 when the CPU has it (checked
 * at run time), with glibc's vector erff/expf/tanhf (libmvec, part of libm). The scalar loops
 * below each vector path are the definition; the vector paths compute the same formulas. */
#include "ops.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- CPU dispatch ------------------------------------------------------------------------- */

#define V512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

static int has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                 !getenv("AF_NO_AVX512");
    }
    return cached;
}

/* libmvec (glibc >= 2.35): 16-lane erff, expf, tanhf. */
V512 extern __m512 _ZGVeN16v_erff(__m512);
V512 extern __m512 _ZGVeN16v_expf(__m512);
V512 extern __m512 _ZGVeN16v_tanhf(__m512);

V512 static inline __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* Σ x[j] and Σ (x[j] - m)² in double, as the scalar code does. */
V512 static double sum512(const float *x, int n) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int j = 0; j < n; j += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - j), x + j);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

/* ---- threads ------------------------------------------------------------------------------ */

/* Grain of the elementwise splits: below this many floats a pass runs on one thread. */
#define PAR_MIN 32768

/* A per-thread scratch buffer, grown when needed and kept for the thread's lifetime, so the
 * attention tasks running on the pool each have their own. */
static float *thread_scratch(size_t n) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (n > cap) {
        free(buf);
        buf = af_malloc(n * sizeof(float));
        cap = n;
    }
    return buf;
}

/* ---- gemm --------------------------------------------------------------------------------- */

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    const float *bias; /* linear_forward: C rows start as bias, then beta = 1 */
    int by_rows;       /* split C's rows (else its columns) in blocks of GEMM_BLOCK */
    int parts;         /* into this many runs of blocks */
} gemm_job;

#define GEMM_BLOCK 16
/* Products below this many multiply-adds are not worth waking the pool for. */
#define GEMM_PAR_MIN (1 << 18)

/* C's M rows of N start as the bias row (the products then add to it): whole vectors through
 * plain stores, the row staying in L1, rather than a memcpy call per row. */
V512 static void fill_rows512(float *C, size_t ldc, const float *row, int M, int N) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        int k = 0;
        for (; k + 16 <= N; k += 16) _mm512_storeu_ps(c + k, _mm512_loadu_ps(row + k));
        if (k < N) {
            __mmask16 t = tail_mask(N - k);
            _mm512_mask_storeu_ps(c + k, t, _mm512_maskz_loadu_ps(t, row + k));
        }
    }
}

static void fill_rows(float *C, size_t ldc, const float *row, int M, int N) {
    if (has_avx512()) {
        fill_rows512(C, ldc, row, M, N);
        return;
    }
    for (int i = 0; i < M; i++) memcpy(C + (size_t)i * ldc, row, N * sizeof(float));
}

static void gemm_part(void *p, int lo, int hi) {
    const gemm_job *g = p;
    /* part lo..hi of g->parts, each a run of whole blocks: one sgemm call per thread, so each
     * packs the other operand once */
    int nb = ((g->by_rows ? g->M : g->N) + GEMM_BLOCK - 1) / GEMM_BLOCK;
    int r0 = (int)((long)nb * lo / g->parts) * GEMM_BLOCK, r1 = (int)((long)nb * hi / g->parts) * GEMM_BLOCK;
    int M = g->M, N = g->N;
    const float *A = g->A, *B = g->B;
    float *C = g->C;
    if (g->by_rows) {
        if (r1 > M) r1 = M;
        M = r1 - r0;
        A += g->ta ? (size_t)r0 : (size_t)r0 * g->lda;
        C += (size_t)r0 * g->ldc;
    } else {
        if (r1 > N) r1 = N;
        N = r1 - r0;
        B += g->tb ? (size_t)r0 * g->ldb : (size_t)r0;
        C += r0;
    }
    if (M <= 0 || N <= 0) return;
    float beta = g->beta;
    if (g->bias) {
        fill_rows(C, g->ldc, g->bias + (g->by_rows ? 0 : r0), M, N);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                M, N, g->K, g->alpha, A, g->lda, B, g->ldb, beta, C, g->ldc);
}

static void gemm_run(gemm_job *g) {
    if (g->M <= 0 || g->N <= 0) return;
    if (af_threads() == 1 || (double)g->M * g->N * g->K < GEMM_PAR_MIN) {
        g->by_rows = 1, g->parts = 1;
        gemm_part(g, 0, 1);
        return;
    }
    g->by_rows = g->M >= g->N;
    g->parts = af_threads();
    af_parallel(g->parts, gemm_part, g);
}

void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_job g = {ta, tb, M, N, K, alpha, beta, A, B, lda, ldb, ldc, C, NULL, 0, 1};
    gemm_run(&g);
}

/* ---- linear ------------------------------------------------------------------------------- */

void linear_forward(float *out, const float *inp, const float *w, const float *b, int M, int K,
                    int N) {
    linear_forward_ld(out, N, inp, K, w, b, M, K, N);
}

void linear_forward_ld(float *out, int ldo, const float *inp, int ldi, const float *w,
                       const float *b, int M, int K, int N) {
    gemm_job g = {0, 1, M, N, K, 1.0f, 0.0f, inp, w, ldi, K, ldo, out, b, 0, 1};
    gemm_run(&g);
}

typedef struct {
    float *db;
    const float *dout;
    int M, N;
} colsum_job;

static void colsum_part(void *p, int lo, int hi) {
    const colsum_job *c = p;
    for (int i = 0; i < c->M; i++) {
        const float *d = c->dout + (size_t)i * c->N;
        for (int j = lo; j < hi; j++) c->db[j] += d[j];
    }
}

void linear_backward_set(float *dinp, const float *dout, const float *w, int M, int K, int N) {
    gemm(0, 0, M, K, N, 1.0f, dout, N, w, K, 0.0f, dinp, K);
}

void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int M, int K, int N) {
    if (dinp) gemm(0, 0, M, K, N, 1.0f, dout, N, w, K, 1.0f, dinp, K);
    if (dw) gemm(1, 0, N, K, M, 1.0f, dout, N, inp, K, 1.0f, dw, K);
    if (db) {
        colsum_job c = {db, dout, M, N};
        if ((size_t)M * N < PAR_MIN || N < 64) colsum_part(&c, 0, N);
        else af_parallel(N, colsum_part, &c);
    }
}

/* ---- layernorm ---------------------------------------------------------------------------- */

typedef struct {
    float *out, *mean, *rstd, *dinp, *dw, *db;
    const float *inp, *w, *b, *dout, *cmean, *crstd;
    const float *inp2; /* the LayerNorm's input is inp + inp2 (NULL: inp alone) */
    float *sum;        /* forward: receives inp + inp2 (may be inp) */
    float *dinp2;      /* backward, set: a second output, the same values as dinp */
    const float *add;  /* backward, set: dinp = add + the gradient */
    int set;           /* backward: dinp = (not +=) */
    int C;
    float eps;
} ln_job;

/* Row i of the LayerNorm's input: inp, or inp + inp2 added into buf (and stored to sum), rounded
 * to float as vec_add2 rounds it, so the fused passes give the same bits. *s (unless NULL)
 * receives Σ x[j] in double, as sum512 sums it. Whole vectors go through plain stores: a masked
 * store does not forward to the loads that read buf back at once, which made the fused pass
 * slower than the two it replaces. */
V512 static inline const float *ln_input512(const ln_job *j, int i, float *buf, double *s) {
    size_t o = (size_t)i * j->C;
    if (!j->inp2) {
        if (s) *s = sum512(j->inp + o, j->C);
        return j->inp + o;
    }
    const float *a = j->inp + o, *b = j->inp2 + o;
    float *sum = j->sum ? j->sum + o : NULL;
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int k = 0;
    for (; k + 16 <= j->C; k += 16) {
        __m512 v = _mm512_add_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k));
        _mm512_storeu_ps(buf + k, v);
        if (sum) _mm512_storeu_ps(sum + k, v);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
    if (k < j->C) {
        __mmask16 t = tail_mask(j->C - k);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(t, a + k), _mm512_maskz_loadu_ps(t, b + k));
        _mm512_mask_storeu_ps(buf + k, t, v);
        if (sum) _mm512_mask_storeu_ps(sum + k, t, v);
        v = _mm512_maskz_mov_ps(t, v);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    }
    if (s) *s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    return buf;
}

static const float *ln_input(const ln_job *j, int i, float *buf) {
    size_t o = (size_t)i * j->C;
    if (!j->inp2) return j->inp + o;
    for (int k = 0; k < j->C; k++) buf[k] = j->inp[o + k] + j->inp2[o + k];
    if (j->sum) memcpy(j->sum + o, buf, j->C * sizeof(float));
    return buf;
}

V512 static void ln_row512(const ln_job *j, int i, float *buf) {
    int C = j->C;
    double s;
    const float *x = ln_input512(j, i, buf, &s);
    float *y = j->out + (size_t)i * C;
    float m = (float)(s / C);
    __m512 vm = _mm512_set1_ps(m);
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int k = 0; k < C; k += 16) {
        __mmask16 t = tail_mask(C - k);
        __m512 d = _mm512_maskz_sub_ps(t, _mm512_maskz_loadu_ps(t, x + k), vm);
        __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
        __m512d d1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1));
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    double v = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    float r = 1.0f / sqrtf((float)(v / C) + j->eps);
    __m512 vr = _mm512_set1_ps(r);
    for (int k = 0; k < C; k += 16) {
        __mmask16 t = tail_mask(C - k);
        __m512 xv = _mm512_maskz_loadu_ps(t, x + k);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(xv, vm), vr);
        __m512 o = _mm512_fmadd_ps(xh, _mm512_maskz_loadu_ps(t, j->w + k),
                                   _mm512_maskz_loadu_ps(t, j->b + k));
        _mm512_mask_storeu_ps(y + k, t, o);
    }
    if (j->mean) j->mean[i] = m;
    if (j->rstd) j->rstd[i] = r;
}

static void ln_fwd_part(void *p, int lo, int hi) {
    const ln_job *j = p;
    int C = j->C;
    float *buf = j->inp2 ? thread_scratch(C) : NULL;
    if (has_avx512()) {
        for (int i = lo; i < hi; i++) ln_row512(j, i, buf);
        return;
    }
    for (int i = lo; i < hi; i++) {
        const float *x = ln_input(j, i, buf);
        float *y = j->out + (size_t)i * C;
        /* two passes in float with a double accumulator: matches PyTorch to ~1e-7 */
        double s = 0;
        for (int k = 0; k < C; k++) s += x[k];
        float m = (float)(s / C);
        double v = 0;
        for (int k = 0; k < C; k++) {
            float d = x[k] - m;
            v += (double)d * d;
        }
        float r = 1.0f / sqrtf((float)(v / C) + j->eps);
        for (int k = 0; k < C; k++) y[k] = (x[k] - m) * r * j->w[k] + j->b[k];
        if (j->mean) j->mean[i] = m;
        if (j->rstd) j->rstd[i] = r;
    }
}

static void ln_forward(const ln_job *j, int M) {
    if ((size_t)M * j->C < PAR_MIN) ln_fwd_part((void *)j, 0, M);
    else af_parallel(M, ln_fwd_part, (void *)j);
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps) {
    ln_job j = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .C = C,
                .eps = eps};
    ln_forward(&j, M);
}

void layernorm_forward_sum(float *out, float *mean, float *rstd, float *sum, const float *a,
                           const float *b, const float *w, const float *bias, int M, int C,
                           float eps) {
    ln_job j = {.out = out, .mean = mean, .rstd = rstd, .inp = a, .inp2 = b, .sum = sum, .w = w,
                .b = bias, .C = C, .eps = eps};
    ln_forward(&j, M);
}

/* dx += r·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)), dxhat = dy·w (no dw, db here). */
V512 static void ln_bwd_row512(const ln_job *j, int i, float *buf) {
    int C = j->C;
    const float *x = ln_input512(j, i, buf, NULL), *dy = j->dout + (size_t)i * C;
    float *dx = j->dinp + (size_t)i * C, *dx2 = j->dinp2 ? j->dinp2 + (size_t)i * C : NULL;
    const float *ad = j->add ? j->add + (size_t)i * C : NULL;
    __m512 vm = _mm512_set1_ps(j->cmean[i]), vr = _mm512_set1_ps(j->crstd[i]);
    __m512d s1a = _mm512_setzero_pd(), s1b = _mm512_setzero_pd();
    __m512d s2a = _mm512_setzero_pd(), s2b = _mm512_setzero_pd();
    for (int k = 0; k < C; k += 16) {
        __mmask16 t = tail_mask(C - k);
        __m512 xh = _mm512_maskz_mul_ps(t, _mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + k), vm), vr);
        __m512 dxh = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, dy + k), _mm512_maskz_loadu_ps(t, j->w + k));
        __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(dxh));
        __m512d d1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(dxh, 1));
        s1a = _mm512_add_pd(s1a, d0);
        s1b = _mm512_add_pd(s1b, d1);
        s2a = _mm512_fmadd_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(xh)), s2a);
        s2b = _mm512_fmadd_pd(d1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(xh, 1)), s2b);
    }
    float a = (float)(_mm512_reduce_add_pd(_mm512_add_pd(s1a, s1b)) / C);
    float c = (float)(_mm512_reduce_add_pd(_mm512_add_pd(s2a, s2b)) / C);
    __m512 va = _mm512_set1_ps(a), vc = _mm512_set1_ps(c);
    for (int k = 0; k < C; k += 16) {
        __mmask16 t = tail_mask(C - k);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + k), vm), vr);
        __m512 dxh = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, dy + k), _mm512_maskz_loadu_ps(t, j->w + k));
        __m512 g = _mm512_mul_ps(vr, _mm512_sub_ps(_mm512_sub_ps(dxh, va), _mm512_mul_ps(xh, vc)));
        if (!j->set) g = _mm512_add_ps(_mm512_maskz_loadu_ps(t, dx + k), g);
        else if (ad) g = _mm512_add_ps(_mm512_maskz_loadu_ps(t, ad + k), g);
        _mm512_mask_storeu_ps(dx + k, t, g);
        if (dx2) _mm512_mask_storeu_ps(dx2 + k, t, g);
    }
}

static void ln_bwd_part(void *p, int lo, int hi) {
    const ln_job *j = p;
    int C = j->C;
    float *buf = j->inp2 ? thread_scratch(C) : NULL;
    if (j->dinp && !j->dw && !j->db && has_avx512()) {
        for (int i = lo; i < hi; i++) ln_bwd_row512(j, i, buf);
        return;
    }
    for (int i = lo; i < hi; i++) {
        const float *x = ln_input(j, i, buf), *dy = j->dout + (size_t)i * C;
        float m = j->cmean[i], r = j->crstd[i];
        /* dxhat = dy·w; dx = r·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)) */
        double s1 = 0, s2 = 0;
        for (int k = 0; k < C; k++) {
            float xh = (x[k] - m) * r, dxh = dy[k] * j->w[k];
            s1 += dxh;
            s2 += (double)dxh * xh;
            if (j->dw) j->dw[k] += dy[k] * xh;
            if (j->db) j->db[k] += dy[k];
        }
        if (!j->dinp) continue;
        float a = (float)(s1 / C), c = (float)(s2 / C);
        float *dx = j->dinp + (size_t)i * C, *dx2 = j->dinp2 ? j->dinp2 + (size_t)i * C : NULL;
        const float *ad = j->add ? j->add + (size_t)i * C : NULL;
        for (int k = 0; k < C; k++) {
            float xh = (x[k] - m) * r;
            float g = r * (dy[k] * j->w[k] - a - xh * c);
            dx[k] = !j->set ? dx[k] + g : ad ? ad[k] + g : g;
            if (dx2) dx2[k] = dx[k];
        }
    }
}

static void ln_backward(const ln_job *j, int M) {
    /* dw and db sum over rows: those runs stay on one thread */
    if ((size_t)M * j->C < PAR_MIN || j->dw || j->db) ln_bwd_part((void *)j, 0, M);
    else af_parallel(M, ln_bwd_part, (void *)j);
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C) {
    ln_job j = {.dinp = dinp, .dw = dw, .db = db, .dout = dout, .inp = inp, .w = w,
                .cmean = mean, .crstd = rstd, .C = C};
    ln_backward(&j, M);
}

void layernorm_backward_set(float *dinp, float *dinp2, const float *add, const float *dout,
                            const float *a, const float *b, const float *w, const float *mean,
                            const float *rstd, int M, int C) {
    ln_job j = {.dinp = dinp, .dinp2 = dinp2, .add = add, .set = 1, .dout = dout, .inp = a,
                .inp2 = b, .w = w, .cmean = mean, .crstd = rstd, .C = C};
    ln_backward(&j, M);
}

/* ---- activations -------------------------------------------------------------------------- */

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

typedef struct {
    float *out;
    const float *inp, *dout;
    size_t n;
    int act;
    int set;      /* backward: out = (not +=) dout·act'(inp); out may be dout */
    float *deriv; /* forward: also act'(inp), computed as the backward computes it */
} act_job;

/* The exact GELU, x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)), and its derivative Φ(x) + x·φ(x).
 * (PyTorch's vectorised CPU kernels evaluate erf by Abramowitz & Stegun 7.1.26, which is faster
 * and within 1.5e-7; af keeps glibc's erff, so that a base pretrained by an earlier af is rebuilt
 * byte for byte: scripts/make-base.sh.) One erff serves the value and the derivative. */
static inline void gelu_parts(float x, float *cdf, float *pdf) {
    *cdf = 0.5f * (1.0f + erff(x * INV_SQRT_2));
    *pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
}

/* erf(x/√2), 16 lanes */
V512 static inline __m512 gelu_erf512(__m512 x) {
    return _ZGVeN16v_erff(_mm512_mul_ps(x, _mm512_set1_ps(INV_SQRT_2)));
}

/* Φ(x) + x·φ(x) from e = erf(x/√2) */
V512 static inline __m512 gelu_deriv512(__m512 x, __m512 e) {
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 cdf = _mm512_mul_ps(half, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(INV_SQRT_2PI),
                               _ZGVeN16v_expf(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(x, x))));
    return _mm512_fmadd_ps(x, pdf, cdf);
}

/* GELU (and, when deriv, its derivative, as gelu_bwd512 computes it), 16 lanes at a time */
V512 static void gelu_fwd512(float *out, float *deriv, const float *inp, size_t n) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(t, inp + i), e = gelu_erf512(x);
        _mm512_mask_storeu_ps(out + i, t,
                              _mm512_mul_ps(_mm512_mul_ps(half, x), _mm512_add_ps(one, e)));
        if (deriv) _mm512_mask_storeu_ps(deriv + i, t, gelu_deriv512(x, e));
    }
}

V512 static void gelu_bwd512(float *dinp, const float *dout, const float *inp, size_t n, int set) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(t, inp + i);
        __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(t, dout + i), gelu_deriv512(x, gelu_erf512(x)));
        if (!set) g = _mm512_add_ps(_mm512_maskz_loadu_ps(t, dinp + i), g);
        _mm512_mask_storeu_ps(dinp + i, t, g);
    }
}

/* ReLU (the adapters' default), 16 lanes at a time: x <= 0 ? 0 : x, so that NaN passes as in
 * PyTorch (a NaN swallowed here would hide a broken weight) and -0 → 0; the gradient passes
 * where x > 0. */
V512 static void relu_fwd512(float *out, float *deriv, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(t, inp + i);
        __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
        __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ);
        _mm512_mask_storeu_ps(out + i, t, _mm512_maskz_mov_ps(keep, x));
        if (deriv) _mm512_mask_storeu_ps(deriv + i, t, _mm512_maskz_mov_ps(pos, _mm512_set1_ps(1.0f)));
    }
}

V512 static void relu_bwd512(float *dinp, const float *dout, const float *inp, size_t n, int set) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(t, inp + i), _mm512_setzero_ps(),
                                           _CMP_GT_OQ);
        __m512 g = _mm512_maskz_loadu_ps(pos & t, dout + i);
        if (!set) g = _mm512_add_ps(_mm512_maskz_loadu_ps(t, dinp + i), g);
        _mm512_mask_storeu_ps(dinp + i, t, g);
    }
}

/* Elementwise passes are cut in chunks of this many floats. */
#define CHUNK 4096

static void chunk_range(size_t n, int lo, int hi, size_t *a, size_t *b) {
    *a = (size_t)lo * CHUNK;
    *b = (size_t)hi * CHUNK;
    if (*b > n) *b = n;
}

/* act'(x), the factor the backward multiplies dout by: one definition for the scalar backward
 * and for act_forward_deriv, so that dout·act' from either gives the same bits. */
static float act_prime(float x, int act) {
    switch (act) {
    case AF_ACT_RELU: return x > 0 ? 1.0f : 0.0f;
    case AF_ACT_GELU: {
        float cdf, pdf;
        gelu_parts(x, &cdf, &pdf);
        return cdf + x * pdf;
    }
    case AF_ACT_GELU_TANH: {
        float t = tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
    case AF_ACT_SWISH: {
        float s = 1.0f / (1.0f + expf(-x));
        return s + x * s * (1.0f - s);
    }
    case AF_ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    case AF_ACT_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f - s);
    }
    }
    return 0.0f;
}

static void act_fwd_part(void *p, int lo, int hi) {
    const act_job *j = p;
    size_t a, b;
    chunk_range(j->n, lo, hi, &a, &b);
    const float *inp = j->inp + a;
    float *out = j->out + a;
    size_t n = b - a;
    if (j->act == AF_ACT_GELU && has_avx512()) {
        gelu_fwd512(out, j->deriv ? j->deriv + a : NULL, inp, n);
        return;
    }
    if (j->act == AF_ACT_RELU && has_avx512()) {
        relu_fwd512(out, j->deriv ? j->deriv + a : NULL, inp, n);
        return;
    }
    switch (j->act) {
    case AF_ACT_RELU:
        for (size_t i = 0; i < n; i++) out[i] = inp[i] <= 0 ? 0 : inp[i]; /* NaN passes */
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
    if (j->deriv) /* after the forward: deriv may be inp (each read before it is written) */
        for (size_t i = 0; i < n; i++) j->deriv[a + i] = act_prime(inp[i], j->act);
}

static void act_bwd_part(void *p, int lo, int hi) {
    const act_job *j = p;
    size_t a, b;
    chunk_range(j->n, lo, hi, &a, &b);
    const float *inp = j->inp + a, *dout = j->dout + a;
    float *dinp = j->out + a;
    size_t n = b - a;
    if (j->act == AF_ACT_GELU && has_avx512()) {
        gelu_bwd512(dinp, dout, inp, n, j->set);
        return;
    }
    if (j->act == AF_ACT_RELU && has_avx512()) {
        relu_bwd512(dinp, dout, inp, n, j->set);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float g = dout[i] * act_prime(inp[i], j->act);
        dinp[i] = j->set ? g : dinp[i] + g;
    }
}

static void run_chunks(af_task_fn part, void *job, size_t n) {
    int chunks = (int)((n + CHUNK - 1) / CHUNK);
    if (n < PAR_MIN) part(job, 0, chunks);
    else af_parallel(chunks, part, job);
}

void act_forward(float *out, const float *inp, size_t n, int act) {
    act_job j = {out, inp, NULL, n, act, 0, NULL};
    run_chunks(act_fwd_part, &j, n);
}

void act_forward_deriv(float *out, float *deriv, const float *inp, size_t n, int act) {
    act_job j = {out, inp, NULL, n, act, 0, deriv};
    run_chunks(act_fwd_part, &j, n);
}

void act_backward(float *dinp, const float *dout, const float *inp, size_t n, int act) {
    act_job j = {dinp, inp, dout, n, act, 0, NULL};
    run_chunks(act_bwd_part, &j, n);
}

void act_backward_set(float *dinp, const float *dout, const float *inp, size_t n, int act) {
    act_job j = {dinp, inp, dout, n, act, 1, NULL};
    run_chunks(act_bwd_part, &j, n);
}

/* ---- softmax ------------------------------------------------------------------------------ */

V512 static void softmax_row512(float *y, const float *x, int N) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < N; j += 16) {
        __mmask16 t = tail_mask(N - j);
        mx = _mm512_mask_max_ps(mx, t, mx, _mm512_maskz_loadu_ps(t, x + j));
    }
    __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), s = _mm512_setzero_ps();
    for (int j = 0; j < N; j += 16) {
        __mmask16 t = tail_mask(N - j);
        __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(t, x + j), vmx));
        e = _mm512_maskz_mov_ps(t, e);
        s = _mm512_add_ps(s, e);
        _mm512_mask_storeu_ps(y + j, t, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    for (int j = 0; j < N; j += 16) {
        __mmask16 t = tail_mask(N - j);
        _mm512_mask_storeu_ps(y + j, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, y + j), inv));
    }
}

static void softmax_row(float *y, const float *x, int N) {
    if (N >= 16 && has_avx512()) {
        softmax_row512(y, x, N);
        return;
    }
    float mx = -INFINITY;
    for (int j = 0; j < N; j++) mx = x[j] > mx ? x[j] : mx;
    float s = 0;
    for (int j = 0; j < N; j++) s += (y[j] = expf(x[j] - mx));
    float inv = 1.0f / s;
    for (int j = 0; j < N; j++) y[j] *= inv;
}

void softmax_forward(float *out, const float *inp, int M, int N) {
    for (int i = 0; i < M; i++) softmax_row(out + (size_t)i * N, inp + (size_t)i * N, N);
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

/* ---- dropout ------------------------------------------------------------------------------ */

/* Masks are a hash of (seed, index) rather than a sequential stream: one draw from the caller's
 * rng seeds a whole call, every element's keep/drop is computed independently (16 lanes at a
 * time, in parallel chunks), and a prefix of the mask does not depend on n. keep ⇔ the hash's top
 * 24 bits, read as a uniform in [0, 1), are >= p: the test af_rng_uniform() >= p makes. */
static inline uint32_t drop_hash(uint32_t i, uint32_t s0, uint32_t s1) {
    uint32_t x = i * 0x9E3779B9u + s0;
    x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
    x ^= s1;
    x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
    return x;
}

typedef struct {
    float *out, *dinp;
    uint8_t *mask;
    const uint8_t *cmask;
    const float *inp, *dout;
    size_t n;
    uint32_t s0, s1, thresh; /* keep when (hash >> 8) >= thresh */
    float scale;
} drop_job;

V512 static void drop_fwd512(const drop_job *j, size_t a, size_t b) {
    const __m512i m1 = _mm512_set1_epi32((int)0x7feb352du), m2 = _mm512_set1_epi32((int)0x846ca68bu);
    const __m512i gold = _mm512_set1_epi32((int)0x9E3779B9u), s0 = _mm512_set1_epi32((int)j->s0);
    const __m512i s1 = _mm512_set1_epi32((int)j->s1), th = _mm512_set1_epi32((int)j->thresh);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 scale = _mm512_set1_ps(j->scale);
    for (size_t i = a; i < b; i += 16) {
        __mmask16 t = tail_mask(b - i);
        __m512i x = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)i), lane);
        x = _mm512_add_epi32(_mm512_mullo_epi32(x, gold), s0);
        for (int r = 0; r < 2; r++) {
            if (r) x = _mm512_xor_si512(x, s1);
            x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
            x = _mm512_mullo_epi32(x, m1);
            x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
            x = _mm512_mullo_epi32(x, m2);
            x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
        }
        __mmask16 keep = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(x, 8), th) & t;
        __m512 v = _mm512_maskz_loadu_ps(t, j->inp + i);
        _mm512_mask_storeu_ps(j->out + i, t, _mm512_maskz_mul_ps(keep, v, scale));
        if (j->mask) _mm_mask_storeu_epi8(j->mask + i, t, _mm_maskz_set1_epi8(keep, 1));
    }
}

static void drop_fwd_part(void *p, int lo, int hi) {
    const drop_job *j = p;
    size_t a, b;
    chunk_range(j->n, lo, hi, &a, &b);
    if (has_avx512()) {
        drop_fwd512(j, a, b);
        return;
    }
    for (size_t i = a; i < b; i++) {
        uint8_t k = (drop_hash((uint32_t)i, j->s0, j->s1) >> 8) >= j->thresh;
        if (j->mask) j->mask[i] = k;
        j->out[i] = k ? j->inp[i] * j->scale : 0.0f;
    }
}

static drop_job drop_job_for(float *out, uint8_t *mask, const float *inp, size_t n, float p,
                             uint64_t seed) {
    drop_job j = {.out = out, .mask = mask, .inp = inp, .n = n, .s0 = (uint32_t)seed,
                  .s1 = (uint32_t)(seed >> 32), .thresh = (uint32_t)ceilf(p * 16777216.0f),
                  .scale = 1.0f / (1.0f - p)};
    return j;
}

void dropout_forward(float *out, uint8_t *mask, const float *inp, size_t n, float p, af_rng *rng) {
    if (p <= 0 || !mask) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    drop_job j = drop_job_for(out, mask, inp, n, p, af_rng_u64(rng));
    run_chunks(drop_fwd_part, &j, n);
}

void dropout_apply(float *out, const float *inp, size_t n, float p, uint64_t seed) {
    if (p <= 0) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    drop_job j = drop_job_for(out, NULL, inp, n, p, seed);
    run_chunks(drop_fwd_part, &j, n);
}

/* dropout_apply on the calling thread alone (inside a task of the pool). */
static void dropout_apply_here(float *out, const float *inp, size_t n, float p, uint64_t seed) {
    drop_job j = drop_job_for(out, NULL, inp, n, p, seed);
    drop_fwd_part(&j, 0, (int)((n + CHUNK - 1) / CHUNK));
}

V512 static void drop_bwd512(const drop_job *j, size_t a, size_t b) {
    const __m512 scale = _mm512_set1_ps(j->scale);
    for (size_t i = a; i < b; i += 16) {
        __mmask16 t = tail_mask(b - i);
        __m128i mb = _mm_maskz_loadu_epi8(t, j->cmask + i);
        __mmask16 keep = _mm_test_epi8_mask(mb, mb);
        __m512 d = _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(t, j->dout + i), scale);
        _mm512_mask_storeu_ps(j->dinp + i, t, _mm512_add_ps(_mm512_maskz_loadu_ps(t, j->dinp + i), d));
    }
}

static void drop_bwd_part(void *p, int lo, int hi) {
    const drop_job *j = p;
    size_t a, b;
    chunk_range(j->n, lo, hi, &a, &b);
    if (has_avx512()) {
        drop_bwd512(j, a, b);
        return;
    }
    for (size_t i = a; i < b; i++)
        if (j->cmask[i]) j->dinp[i] += j->dout[i] * j->scale;
}

void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, size_t n, float p) {
    if (p <= 0 || !mask) {
        vec_add(dinp, dout, n);
        return;
    }
    drop_job j = {.dinp = dinp, .cmask = mask, .dout = dout, .n = n, .scale = 1.0f / (1.0f - p)};
    run_chunks(drop_bwd_part, &j, n);
}

/* ---- vectors ------------------------------------------------------------------------------ */

typedef struct {
    float *y;
    const float *a, *b;
    size_t n;
    int mul; /* y = a·b, else a + b */
} vec_job;

V512 static void binop512(float *y, const float *a, const float *b, size_t n, int mul) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(t, a + i), z = _mm512_maskz_loadu_ps(t, b + i);
        _mm512_mask_storeu_ps(y + i, t, mul ? _mm512_mul_ps(x, z) : _mm512_add_ps(x, z));
    }
}

static void vec_part(void *p, int lo, int hi) {
    const vec_job *v = p;
    size_t a, b;
    chunk_range(v->n, lo, hi, &a, &b);
    if (has_avx512()) {
        binop512(v->y + a, v->a + a, v->b + a, b - a, v->mul);
        return;
    }
    if (v->mul)
        for (size_t i = a; i < b; i++) v->y[i] = v->a[i] * v->b[i];
    else
        for (size_t i = a; i < b; i++) v->y[i] = v->a[i] + v->b[i];
}

static void zero_part(void *p, int lo, int hi) {
    const vec_job *v = p;
    size_t a, b;
    chunk_range(v->n, lo, hi, &a, &b);
    memset(v->y + a, 0, (b - a) * sizeof(float));
}

void vec_zero(float *y, size_t n) {
    vec_job v = {y, NULL, NULL, n, 0};
    run_chunks(zero_part, &v, n);
}

void vec_add(float *y, const float *x, size_t n) {
    vec_job v = {y, y, x, n, 0};
    run_chunks(vec_part, &v, n);
}

void vec_add2(float *out, const float *a, const float *b, size_t n) {
    vec_job v = {out, a, b, n, 0};
    run_chunks(vec_part, &v, n);
}

void vec_mul(float *out, const float *a, const float *b, size_t n) {
    vec_job v = {out, a, b, n, 1};
    run_chunks(vec_part, &v, n);
}

/* ---- row kernels (one thread) ------------------------------------------------------------- */

/* Σ a[i]·b[i] in 16 float lanes (two accumulators), reduced at the end: a different order of
 * additions than the scalar loop, so the last bits differ between the two paths. */
V512 static float dot512(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(t, a + i), _mm512_maskz_loadu_ps(t, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

float vec_dot(const float *a, const float *b, int n) {
    if (has_avx512()) return dot512(a, b, n);
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y + a·x rounded twice (product, then sum), as the scalar loop computes it */
V512 static void axpy512(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    for (int i = 0; i < n; i += 16) {
        __mmask16 t = tail_mask(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(t, y + i),
                                 _mm512_mul_ps(va, _mm512_maskz_loadu_ps(t, x + i)));
        _mm512_mask_storeu_ps(y + i, t, v);
    }
}

void vec_axpy(float *y, float a, const float *x, int n) {
    if (has_avx512()) {
        axpy512(y, a, x, n);
        return;
    }
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* o = Σ_i p[i]·x[i] over N rows of n: the bits of zeroing o and adding p[i]·x[i] in turn,
 * in one pass (per 16 lanes, the running sum stays in a register). */
V512 static void mix512(float *o, const float *p, const float *x, int N, int n) {
    for (int k = 0; k < n; k += 16) {
        __mmask16 t = tail_mask(n - k);
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < N; i++)
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_set1_ps(p[i]),
                                                   _mm512_maskz_loadu_ps(t, x + (size_t)i * n + k)));
        _mm512_mask_storeu_ps(o + k, t, acc);
    }
}

void vec_mix(float *o, const float *p, const float *x, int N, int n) {
    if (has_avx512()) {
        mix512(o, p, x, N, n);
        return;
    }
    memset(o, 0, n * sizeof(float));
    for (int i = 0; i < N; i++)
        for (int k = 0; k < n; k++) o[k] += p[i] * x[(size_t)i * n + k];
}

/* ---- attention ---------------------------------------------------------------------------- */

/* HF adds finfo(float32).min rather than -inf: a fully masked row then stays finite (uniform)
 * instead of NaN, and exp() of a masked score underflows to exactly 0, so padding never leaks. */
#define ATT_MASKED (-3.4028234663852886e38f)

/* Dropout on the attention probabilities draws its masks per (sequence, head) from a stream
 * seeded by one draw of the caller's rng and the pair's index, so the result does not depend on
 * which thread runs which pair. */
static uint64_t pair_seed(uint64_t seed, int pair) {
    af_rng r;
    af_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(pair + 1)));
    return af_rng_u64(&r);
}

typedef struct {
    float *ctx, *probs, *dqkv;
    const float *qkv, *dctx, *cprobs;
    const int *key_mask;
    int B, S, NH, D;
    float p;
    uint64_t seed;
} att_job;

/* P[S,S] = softmax(Q·Kᵀ/√D + mask) of pair t: what the forward keeps, and what a backward
 * without it computes again (the same calls, so the same bits). */
static void att_probs(const att_job *j, int t, float *P) {
    const int S = j->S, NH = j->NH, D = j->D, H = NH * D, ld = 3 * H;
    int b = t / NH, h = t % NH;
    const float *q = j->qkv + (size_t)b * S * ld, *k = q + H;
    const int *km = j->key_mask ? j->key_mask + (size_t)b * S : NULL;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, 1.0f / sqrtf((float)D),
                q + h * D, ld, k + h * D, ld, 0.0f, P, S);
    int masked = 0;
    for (int c = 0; km && c < S; c++) masked |= !km[c];
    for (int i = 0; i < S; i++) {
        float *row = P + (size_t)i * S;
        if (masked)
            for (int c = 0; c < S; c++)
                if (!km[c]) row[c] += ATT_MASKED;
        softmax_row(row, row, S);
    }
}

static void att_fwd_part(void *vp, int lo, int hi) {
    const att_job *j = vp;
    const int S = j->S, NH = j->NH, D = j->D, H = NH * D, ld = 3 * H;
    const size_t SS = (size_t)S * S;
    const int drop = j->p > 0;
    /* probs NULL (inference): each pair's probabilities live in the thread's scratch */
    float *own = !j->probs || drop ? thread_scratch((!j->probs + drop) * SS) : NULL;
    float *scratch = drop ? own + (j->probs ? 0 : SS) : NULL;
    for (int t = lo; t < hi; t++) {
        int b = t / NH, h = t % NH;
        const float *v = j->qkv + (size_t)b * S * ld + 2 * H;
        float *P = j->probs ? j->probs + (size_t)t * SS : own;
        att_probs(j, t, P);
        const float *Pd = P;
        if (drop) {
            dropout_apply_here(scratch, P, SS, j->p, pair_seed(j->seed, t));
            Pd = scratch;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, 1.0f, Pd, S, v + h * D, ld,
                    0.0f, j->ctx + (size_t)b * S * H + h * D, H);
    }
}

void attention_forward(float *ctx, float *probs, float *scratch, const float *qkv,
                       const int *key_mask, int B, int S, int NH, int D, float p, uint64_t seed) {
    (void)scratch; /* each thread has its own */
    att_job j = {.ctx = ctx, .probs = probs, .qkv = qkv, .key_mask = key_mask,
                 .B = B, .S = S, .NH = NH, .D = D, .p = p, .seed = seed};
    af_parallel(B * NH, att_fwd_part, &j);
}

static void att_bwd_part(void *vp, int lo, int hi) {
    const att_job *j = vp;
    const int S = j->S, NH = j->NH, D = j->D, H = NH * D, ld = 3 * H;
    const float alpha = 1.0f / sqrtf((float)D);
    const size_t SS = (size_t)S * S;
    const int drop = j->p > 0;
    float *Pd = thread_scratch(3 * SS), *dS = Pd + SS, *Pr = dS + SS;
    for (int t = lo; t < hi; t++) {
        int b = t / NH, h = t % NH;
        const float *q = j->qkv + (size_t)b * S * ld, *k = q + H, *v = q + 2 * H;
        float *dq = j->dqkv + (size_t)b * S * ld, *dk = dq + H, *dv = dq + 2 * H;
        const float *dc = j->dctx + (size_t)b * S * H;
        const float *P = j->cprobs ? j->cprobs + (size_t)t * SS : Pr;
        if (!j->cprobs) att_probs(j, t, Pr);
        const uint64_t ps = drop ? pair_seed(j->seed, t) : 0;
        const float *Pv = P;
        if (drop) { /* the forward's mask, hashed again from its seed */
            dropout_apply_here(Pd, P, SS, j->p, ps);
            Pv = Pd;
        }
        /* dV = dropout(P)ᵀ·dctx;  d dropout(P) = dctx·Vᵀ (the pair's blocks of dqkv are its
         * own and written once: beta 0, nothing to zero first) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, S, 1.0f, Pv, S, dc + h * D, H,
                    0.0f, dv + h * D, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, D, 1.0f, dc + h * D, H,
                    v + h * D, ld, 0.0f, dS, S);
        if (drop) dropout_apply_here(dS, dS, SS, j->p, ps);
        /* softmax backward in place: dS = P ⊙ (dP − Σ dP⊙P); masked keys have P = 0 */
        for (int i = 0; i < S; i++) {
            float *d = dS + (size_t)i * S;
            const float *y = P + (size_t)i * S;
            float dot = 0;
            for (int c = 0; c < S; c++) dot += d[c] * y[c];
            for (int c = 0; c < S; c++) d[c] = y[c] * (d[c] - dot);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, S, D, S, alpha, dS, S, k + h * D,
                    ld, 0.0f, dq + h * D, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, S, alpha, dS, S, q + h * D, ld,
                    0.0f, dk + h * D, ld);
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dctx, const float *qkv,
                        const float *probs, const int *key_mask, int B, int S, int NH, int D,
                        float p, uint64_t seed) {
    (void)scratch;
    att_job j = {.dqkv = dqkv, .qkv = qkv, .dctx = dctx, .cprobs = probs, .key_mask = key_mask,
                 .B = B, .S = S, .NH = NH, .D = D, .p = p, .seed = seed};
    af_parallel(B * NH, att_bwd_part, &j);
}

/* ---- attention of the first token only ------------------------------------------------------ */

static void attc_fwd_part(void *vp, int lo, int hi) {
    const att_job *j = vp;
    const int S = j->S, NH = j->NH, D = j->D, H = NH * D, ld = 3 * H;
    const float alpha = 1.0f / sqrtf((float)D);
    const int drop = j->p > 0;
    float *Pd = thread_scratch(S);
    for (int t = lo; t < hi; t++) {
        int b = t / NH, h = t % NH;
        const float *q = j->qkv + (size_t)b * S * ld, *k = q + H, *v = q + 2 * H;
        const int *km = j->key_mask ? j->key_mask + (size_t)b * S : NULL;
        float *P = j->probs + (size_t)t * S;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, S, D, alpha, k + h * D, ld, q + h * D, 1, 0.0f, P,
                    1);
        for (int c = 0; km && c < S; c++)
            if (!km[c]) P[c] += ATT_MASKED;
        softmax_row(P, P, S);
        const float *Pv = P;
        if (drop) {
            dropout_apply_here(Pd, P, S, j->p, pair_seed(j->seed, t));
            Pv = Pd;
        }
        cblas_sgemv(CblasRowMajor, CblasTrans, S, D, 1.0f, v + h * D, ld, Pv, 1, 0.0f,
                    j->ctx + (size_t)b * H + h * D, 1);
    }
}

void attention_cls_forward(float *ctx, float *probs, const float *qkv, const int *key_mask, int B,
                           int S, int NH, int D, float p, uint64_t seed) {
    att_job j = {.ctx = ctx, .probs = probs, .qkv = qkv, .key_mask = key_mask,
                 .B = B, .S = S, .NH = NH, .D = D, .p = p, .seed = seed};
    af_parallel(B * NH, attc_fwd_part, &j);
}

static void attc_bwd_part(void *vp, int lo, int hi) {
    const att_job *j = vp;
    const int S = j->S, NH = j->NH, D = j->D, H = NH * D, ld = 3 * H;
    const float alpha = 1.0f / sqrtf((float)D);
    const int drop = j->p > 0;
    float *Pd = thread_scratch(2 * (size_t)S), *dS = Pd + S;
    for (int t = lo; t < hi; t++) {
        int b = t / NH, h = t % NH;
        const float *q = j->qkv + (size_t)b * S * ld, *k = q + H, *v = q + 2 * H;
        float *dq = j->dqkv + (size_t)b * S * ld, *dk = dq + H, *dv = dq + 2 * H;
        const float *dc = j->dctx + (size_t)b * H + h * D;
        const float *P = j->cprobs + (size_t)t * S;
        const uint64_t ps = drop ? pair_seed(j->seed, t) : 0;
        const float *Pv = P;
        if (drop) {
            dropout_apply_here(Pd, P, S, j->p, ps);
            Pv = Pd;
        }
        /* dV += dropout(P)ᵀ·dctx (an outer product); d dropout(P) = V·dctx */
        cblas_sger(CblasRowMajor, S, D, 1.0f, Pv, 1, dc, 1, dv + h * D, ld);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, S, D, 1.0f, v + h * D, ld, dc, 1, 0.0f, dS, 1);
        if (drop) dropout_apply_here(dS, dS, S, j->p, ps);
        float dot = 0;
        for (int c = 0; c < S; c++) dot += dS[c] * P[c];
        for (int c = 0; c < S; c++) dS[c] = P[c] * (dS[c] - dot);
        cblas_sgemv(CblasRowMajor, CblasTrans, S, D, alpha, k + h * D, ld, dS, 1, 1.0f, dq + h * D,
                    1);
        cblas_sger(CblasRowMajor, S, D, alpha, dS, 1, q + h * D, 1, dk + h * D, ld);
    }
}

void attention_cls_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                            int B, int S, int NH, int D, float p, uint64_t seed) {
    att_job j = {.dqkv = dqkv, .qkv = qkv, .dctx = dctx, .cprobs = probs, .B = B, .S = S,
                 .NH = NH, .D = D, .p = p, .seed = seed};
    af_parallel(B * NH, attc_bwd_part, &j);
}
