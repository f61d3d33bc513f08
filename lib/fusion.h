/* fusion.h: combining the outputs of N adapters at one site (lib/README.md, "The model"), forward
 * and backward.
 *
 * Every method maps the query input x[M,H] (the site's adapter input: LN(h + r) for Pfeiffer, h
 * for Houlsby) and the adapters' outputs ups[M,N,H] (adapter_stack_forward's layout: token, then
 * adapter, then feature) to o[M,H], the fused value before the residual; the site then computes
 * LN(o + h + r). Per token m, with u_i = ups[m,i,:]:
 *
 * attention (AdapterHub BertFusion with DynamicAdapterFusionConfig; Pfeiffer et al. 2021 §3.2):
 *     q = Wq·x + bq;  k_i = Wk·u_i + bk;  v_i = Wv·u_i   (value has no bias)
 *     s_i = q·k_i (no 1/√d);  s = dropout(s) in training;  p = softmax(s/T);  o = Σ_i p_i·v_i
 *   computed as  s_i = (Wkᵀq)·u_i + q·bk  and  o = Wv·(Σ_i p_i u_i): one H×H product per token
 *   for the keys and one for the values instead of N each. Both identities hold exactly in real
 *   arithmetic, also under dropout, because the constant q·bk is kept in every s_i rather than
 *   dropped for cancelling in the softmax: dropout zeroes a whole s_i, constant included, so
 *   dropping it would change the result whenever some but not all s_i are dropped. Results
 *   therefore equal AdapterHub's up to float rounding, with or without dropout.
 *   Init: query, key N(0, 0.02), zero biases; value identity with 1e-6 everywhere else.
 *   Regulariser (fusion_reg_*): 0.01·‖I − Wv‖²_F per fusion layer, added to the loss.
 * static (StaticAdapterFusionConfig): attention without the value matrix, o = Σ_i p_i u_i;
 *   no regulariser.
 * multihead (af's own; AdapterHub has no such method): self-attention among the N adapter
 *   outputs of the token, as torch.nn.MultiheadAttention(U, U, U) on U = ups[m] (N×H) with
 *   `heads` heads of d = H/heads features:
 *     [Q K V] = U·in_proj_weightᵀ + in_proj_bias;  per head: A = softmax(Q_h K_hᵀ/(√d·T)) (N×N),
 *     A = dropout(A) in training;  Y_h = A·V_h;  ȳ = (1/N)·Σ_i Y[i,:] (mean over adapters);
 *     o = out_proj.weight·ȳ + out_proj.bias.
 *   At T = 1 this is the mean over the N outputs of nn.MultiheadAttention (batch_first) on U.
 *   x is not used (dx receives nothing). Init: N(0, 0.02) weights, zero biases.
 * weighted: p = softmax(w) with one learnable scalar per adapter (w = 0 at init: uniform);
 *   o = Σ_i p_i u_i. With cfg.fixed the weights are not learned (an unweighted mean at init).
 * gating: g = σ(gate(x)) (or softmax with cfg.gate_softmax), gate = nn.Sequential(Linear(H,H/2),
 *   ReLU, Dropout, Linear(H/2,N)); o = Σ_i g_i u_i. Init N(0, 0.02), zero biases.
 *
 * After a forward, cache.p[M,N] holds per-token weights over the adapters, for inspection:
 * attention/static: p; weighted: softmax(w) on every row; gating: g (sigmoid gates need not sum
 * to 1); multihead: how much of ȳ comes from each adapter's value, (1/N)·Σ_i A[i,j] averaged over
 * heads (before attention dropout).
 *
 * Tensor names under "bert.encoder.layer.L.output.adapter_fusion_layer.A,B,C." (fusion_params):
 *   attention: query.weight (H,H) query.bias (H) key.weight (H,H) key.bias (H) value.weight (H,H)
 *   static:    query.weight query.bias key.weight key.bias
 *   multihead: in_proj_weight (3H,H) in_proj_bias (3H) out_proj.weight (H,H) out_proj.bias (H)
 *              (nn.MultiheadAttention's names: q, k, v rows stacked, so one sgemm projects all)
 *   weighted:  weights (N)
 *   gating:    gate.0.weight (H/2,H) gate.0.bias (H/2) gate.3.weight (N,H/2) gate.3.bias (N)
 */
#ifndef AF_FUSION_H
#define AF_FUSION_H

#include "af.h"
#include "param.h"

typedef enum {
    FUSION_ATTENTION,
    FUSION_STATIC,
    FUSION_MULTIHEAD,
    FUSION_WEIGHTED,
    FUSION_GATING,
} fusion_method;

#define FUSION_REG_COEF 0.01 /* AdapterHub get_fusion_regularization_loss */

typedef struct {
    int method;       /* fusion_method */
    int H, N;         /* hidden size, number of adapters */
    int heads;        /* multihead: number of heads, H % heads == 0 */
    int gate_softmax; /* gating: 0 sigmoid (default), 1 softmax over adapters */
    int fixed;        /* weighted: the weights are not learned (backward leaves them alone) */
    float dropout;    /* in training: attention/static on the scores s (AdapterHub uses the base's
                         attention_probs_dropout_prob), multihead on the attention probabilities,
                         gating in the gate's hidden layer; weighted has none */
} fusion_config;

/* "attention", "static", "multihead", "weighted", "gating" <-> fusion_method; -1 if unknown. */
int fusion_method_parse(const char *name);
const char *fusion_method_name(int method);
/* Checks sizes (N >= 1, H >= 2, heads dividing H, 0 <= dropout < 1). */
int fusion_config_check(const fusion_config *cfg, af_err *e);
/* The method's own options in a file's config JSON ("heads", "gate", "fixed_weights"), and back
 * into cfg (its method set); absent keys give the defaults. */
struct cJSON;
void fusion_config_to_json(struct cJSON *j, const fusion_config *cfg);
int fusion_config_from_json(fusion_config *cfg, const struct cJSON *j, af_err *e);
/* Whether a method takes an option of its own ("heads", "fixed_weights", "gate"), and the
 * methods that do ("weighted"; "a or b" for two), for messages. */
int fusion_method_takes(int method, const char *option);
void fusion_methods_taking(char *buf, size_t cap, const char *option);
/* 1 when the method reads the query input x (its backward then computes dx). */
int fusion_uses_input(const fusion_config *cfg);

/* One fusion layer's parameters (or their gradients: same struct, same layout). Pointers a method
 * does not use are NULL. */
typedef struct {
    fusion_config cfg;
    float *query_w, *query_b; /* (H,H), (H)   attention, static */
    float *key_w, *key_b;     /* (H,H), (H)   attention, static */
    float *value_w;           /* (H,H)        attention */
    float *in_w, *in_b;       /* (3H,H), (3H) multihead */
    float *out_w, *out_b;     /* (H,H), (H)   multihead */
    float *weights;           /* (N)          weighted */
    float *gate0_w, *gate0_b; /* (H/2,H), (H/2) gating */
    float *gate3_w, *gate3_b; /* (N,H/2), (N)   gating */
} fusion;

/* Floats of the parameter buffer; the number of its tensors (the method's row says, no cap); the
 * table itself into out[fusion_param_count(cfg)] (returns that count). */
size_t fusion_nparams(const fusion_config *cfg);
int fusion_param_count(const fusion_config *cfg);
int fusion_params(param_desc *out, const fusion_config *cfg);
/* Points f's tensors into buf (fusion_nparams floats) per fusion_params. */
void fusion_carve(fusion *f, const fusion_config *cfg, float *buf);
/* The method's init (see above); rng draws only for the N(0, 0.02) weights. */
void fusion_init(fusion *f, af_rng *rng);

/* AdapterHub's temperature schedule (config "temperature": true): T starts at 50 and drops by
 * 50/1000 = 0.05 after every forward of the fusion layer, floored at 1. Returns T for the
 * forward that follows `step` earlier ones. Without annealing T is 1. */
double fusion_temperature(long step);

/* What forward keeps for backward, for up to M tokens. Only p is for the caller to read; the
 * other pointers are the method's (NULL when unused). */
typedef struct {
    int M;
    int shared;     /* temporaries in a block other layers use too (fusion_cache_carve_shared) */
    int dropped;    /* dropout was applied in the last forward */
    float T;        /* temperature of the last forward */
    float *p;       /* (M, N) weights over adapters, see above */
    float *q;       /* attention, static: (M, H) Wq·x + bq */
    float *u;       /* attention, static: (M, H) Wkᵀ·q */
    float *mix;     /* attention: (M, H) Σ p_i u_i;  multihead: (M, H) ȳ */
    float *qkv;     /* multihead: (M·N, 3H) */
    float *att;     /* multihead: (M, heads, N, N) softmax before dropout */
    float *z1, *h1; /* gating: (M, H/2) before and after the ReLU */
    float *hd;      /* gating: (M, H/2) after dropout */
    float *sw;      /* weighted: (N) softmax(w) */
    float *scratch; /* backward (and multihead forward) temporaries */
    uint8_t *mask;  /* dropout mask, same shape as what is dropped */
} fusion_cache;

size_t fusion_cache_floats(const fusion_config *cfg, int M);
void fusion_cache_carve(fusion_cache *c, float *mem, const fusion_config *cfg, int M);
/* The same with the temporaries (fusion_scratch_floats of them) in a block the caller gives and
 * may share between fusion layers that never run at the same time. The cache then keeps less
 * (attention, static: not q, nor the mix), and the backward computes that again from x and ups:
 * one more H×H product for attention and static fusion. */
size_t fusion_scratch_floats(const fusion_config *cfg, int M);
size_t fusion_cache_floats_shared(const fusion_config *cfg, int M);
void fusion_cache_carve_shared(fusion_cache *c, float *mem, float *scratch,
                               const fusion_config *cfg, int M);

/* o[M,H] from x[M,H] and ups[M,N,H]. T: softmax temperature (attention, static, multihead; 1 for
 * none). rng non-NULL means training: dropout with cfg.dropout, masks drawn from rng (the same
 * rng state gives the same masks). */
void fusion_forward(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng);
/* Accumulates dx[M,H], dups[M,N,H] (either NULL: not needed) and the parameter gradients into g
 * (NULL: fusion frozen) from dout[M,H], for the x, ups of the last forward. */
void fusion_backward(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M);

/* The weights over the inputs when they do not depend on the input (weighted fusion: the softmax
 * of its weights, as its forward computes them, bit for bit): fills w[cfg.N] and returns 0, or
 * returns -1 for a method whose weights come from each token. */
int fusion_static_weights(float *w, const fusion *f);
int fusion_has_static_weights(const fusion_config *cfg);

/* The value regulariser: returns 0.01·‖I − Wv‖²_F (0 for methods without a value matrix);
 * backward accumulates its gradient 0.02·(Wv − I), scaled by `scale`, into g->value_w. */
double fusion_reg_forward(const fusion *f);
void fusion_reg_backward(fusion *g, const fusion *f, float scale);

#endif
