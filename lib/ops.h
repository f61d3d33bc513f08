/* ops.h: the elementary layers every model part is built from, each a forward/backward pair.
 *
 * Argument order (llm.c): outputs first, then inputs, then dimensions. Shapes are row-major.
 * Every backward ACCUMULATES (+=) into all its gradient outputs, inputs' and parameters' alike, so
 * a value used in several places simply receives the sum; callers zero gradients when they start.
 * A NULL gradient pointer means "not needed" (frozen weights, inputs nothing trains below) and is
 * never computed. */
#ifndef AF_OPS_H
#define AF_OPS_H

#include "af.h"

/* C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, op = transpose when ta/tb: cblas_sgemm with
 * C's rows (or columns, when it has more) cut between the threads of af's pool. */
void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* out[M,N] = inp[M,K] · w[N,K]ᵀ + b[N]   (nn.Linear; b may be NULL) */
void linear_forward(float *out, const float *inp, const float *w, const float *b, int M, int K,
                    int N);
/* The same with row strides: out rows ldo apart, inp rows ldi apart (column blocks of wider
 * matrices, such as the stacked adapters' or q, k, v's) */
void linear_forward_ld(float *out, int ldo, const float *inp, int ldi, const float *w,
                       const float *b, int M, int K, int N);
/* dinp[M,K] = dout·w, overwriting (the input gradient of a frozen linear layer) */
void linear_backward_set(float *dinp, const float *dout, const float *w, int M, int K, int N);
/* dinp[M,K] += dout·w;  dw[N,K] += doutᵀ·inp;  db[N] += Σ_rows dout */
void linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int M, int K, int N);

/* out = LN(inp)·w + b over rows of C; mean/rstd [M] are saved for backward (may be NULL). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C);
/* Residual + LayerNorm in one pass: out = LN(a + b); sum (NULL: not kept; may be a) receives
 * a + b. The same bits as vec_add2 followed by layernorm_forward. */
void layernorm_forward_sum(float *out, float *mean, float *rstd, float *sum, const float *a,
                           const float *b, const float *w, const float *bias, int M, int C,
                           float eps);
/* The backward of LN(a + b) (b may be NULL: LN(a)) without dw, db, OVERWRITING its outputs:
 * dinp = add + d(a + b) (add NULL: 0 +), and dinp2 (unless NULL) the same values: the gradient
 * both terms of the sum receive, plus a residual gradient, in one pass. */
void layernorm_backward_set(float *dinp, float *dinp2, const float *add, const float *dout,
                            const float *a, const float *b, const float *w, const float *mean,
                            const float *rstd, int M, int C);

typedef enum {
    AF_ACT_RELU,
    AF_ACT_GELU,      /* exact: x·Φ(x) (HF "gelu") */
    AF_ACT_GELU_TANH, /* HF "gelu_new" / "gelu_pytorch_tanh" */
    AF_ACT_SWISH,     /* x·σ(x) (AdapterHub "swish") */
    AF_ACT_TANH,
    AF_ACT_SIGMOID,
} af_act;

/* Name <-> enum: "relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "swish"/"silu", "tanh",
 * "sigmoid". Returns -1 for an unknown name. */
int act_parse(const char *name);
const char *act_name(int act);
/* out[n] = act(inp[n]); out may equal inp only for forward-only use (backward needs inp). */
void act_forward(float *out, const float *inp, size_t n, int act);
/* out = act(inp) and deriv = act'(inp), the factor act_backward multiplies dout by (computed as
 * it computes it, so dout·deriv gives its bits); deriv may be inp, out may not. */
void act_forward_deriv(float *out, float *deriv, const float *inp, size_t n, int act);
/* dinp += dout · act'(inp) */
void act_backward(float *dinp, const float *dout, const float *inp, size_t n, int act);
/* dinp = dout · act'(inp), overwriting; dinp may be dout (the gradient taken in place) */
void act_backward_set(float *dinp, const float *dout, const float *inp, size_t n, int act);

/* Row softmax over N columns: out[M,N]. */
void softmax_forward(float *out, const float *inp, int M, int N);
/* dinp += out ⊙ (dout − Σ dout⊙out) per row */
void softmax_backward(float *dinp, const float *dout, const float *out, int M, int N);

/* Inverted dropout: out = inp·mask/(1−p) with mask ~ Bernoulli(1−p), stored as 0/1 bytes.
 * p == 0 or mask == NULL: out = inp. One draw from rng seeds the call; mask[i] is a hash of that
 * seed and i, so the same rng state gives the same mask, and a shorter call its prefix. */
void dropout_forward(float *out, uint8_t *mask, const float *inp, size_t n, float p, af_rng *rng);
void dropout_backward(float *dinp, const float *dout, const uint8_t *mask, size_t n, float p);
/* The same dropout with the mask never stored: out = inp·mask/(1−p), mask[i] the hash of (seed, i)
 * that dropout_forward would have drawn with this seed (p == 0: out = inp; out may be inp). Its
 * backward is the same call on the gradient, with the same seed: din = dout·mask/(1−p). */
void dropout_apply(float *out, const float *inp, size_t n, float p, uint64_t seed);

/* y = 0 */
void vec_zero(float *y, size_t n);
/* y += x */
void vec_add(float *y, const float *x, size_t n);
/* out = a + b */
void vec_add2(float *out, const float *a, const float *b, size_t n);
/* out = a ⊙ b (out may be a or b) */
void vec_mul(float *out, const float *a, const float *b, size_t n);
/* Row kernels on the calling thread (for per-token loops that already run on the pool):
 * Σ a·b (the AVX-512 path sums in another order than the scalar one), and y += a·x. */
float vec_dot(const float *a, const float *b, int n);
void vec_axpy(float *y, float a, const float *x, int n);
/* o[n] = Σ_i p[i]·x[i, n] over N rows (the bits of N vec_axpy into zeros) */
void vec_mix(float *o, const float *p, const float *x, int N, int n);

/* Multi-head self-attention core (HF BertSelfAttention after the q/k/v projections), batched per
 * (sequence, head) with cblas_sgemm, the pairs shared between the pool's threads. qkv [B*S, 3*NH*D]
 * holds q | k | v per token, head h at columns h*D of each; key_mask [B*S] is 1 for real tokens, 0
 * for padding (NULL: all real). probs[b,h] = softmax(Q·Kᵀ/√D + (1 − key_mask)·finfo.min)     [B,
 * NH, S, S], kept for backward ctx[b·S+i, h·D..] = dropout(probs[b,h])·V                      [B*S,
 * NH*D] Dropout (p > 0) masks each (sequence, head) pair's probabilities with a hash of a seed
 * derived from `seed` and the pair, so the mask takes no memory: the backward, given the same p and
 * seed, hashes it again. scratch is unused (each thread keeps its own). probs NULL: not kept (each
 * thread computes a pair's in its own S×S scratch), for a forward no backward follows. */
void attention_forward(float *ctx, float *probs, float *scratch, const float *qkv,
                       const int *key_mask, int B, int S, int NH, int D, float p, uint64_t seed);
/* dqkv [B*S, 3*NH*D] = gradients of q, k and v from dctx, OVERWRITING (every element is
 * written). probs: the forward's; NULL: computed again from q, k and key_mask, pair by pair
 * (the same bits; costs the Q·Kᵀ products once more, saves B·NH·S² floats). scratch is unused. */
void attention_backward(float *dqkv, float *scratch, const float *dctx, const float *qkv,
                        const float *probs, const int *key_mask, int B, int S, int NH, int D,
                        float p, uint64_t seed);

/* The same for the first token of every sequence only (its query; keys and values of every
 * token): what the last layer computes when only [CLS] is read from it. qkv as above (only the
 * first token's q is read); ctx [B, NH*D] one row per sequence; probs [B, NH, S]. */
void attention_cls_forward(float *ctx, float *probs, const float *qkv, const int *key_mask, int B,
                           int S, int NH, int D, float p, uint64_t seed);
/* dqkv += the gradients: q of the first tokens, k and v of every token. dctx [B, NH*D]. */
void attention_cls_backward(float *dqkv, const float *dctx, const float *qkv, const float *probs,
                            int B, int S, int NH, int D, float p, uint64_t seed);

#endif
