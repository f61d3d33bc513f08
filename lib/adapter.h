/* adapter.h: the bottleneck adapter (Houlsby et al. 2019; AdapterHub's `Adapter` module).
 *
 * On M tokens x[M,H]:   pre = x·W_downᵀ + b_down        [M,r]
 *                       act = f(pre)                      [M,r]   f: relu, gelu, swish, tanh
 *                       up  = act·W_upᵀ + b_up            [M,H]
 * `up` is the adapter output before any residual or LayerNorm: those belong to the site
 * (site.h), exactly as AdapterHub's Adapter.forward returns `up` next to its residual sum.
 *
 * Tensor names under "...adapters.NAME." (AdapterHub, nn.Sequential(Linear, act) for the down
 * projection, hence the ".0"):
 *     adapter_down.0.weight (r,H)   adapter_down.0.bias (r)   adapter_up.weight (H,r)
 *     adapter_up.bias (H)
 *
 * Several adapters reading the same x (fusion) form a stack: adapter_stack_forward computes all
 * their `up`s into ups[M,N,H]. When the adapters' down projections lie one after the other in
 * memory (adapter_stack_carve arranges that), all N down projections are one sgemm with N·r
 * output rows; otherwise each adapter gets its own, with the same result. Adapters in a stack may
 * differ in r and in activation (AdapterHub can fuse adapters of different reduction factors). */
#ifndef AF_ADAPTER_H
#define AF_ADAPTER_H

#include "af.h"
#include "param.h"

#define ADAPTER_NPARAMS 4

/* A view of one adapter's weights (or of their gradients: same layout, same struct). */
typedef struct {
    int H, r;      /* hidden size, bottleneck size */
    int act;       /* af_act (ops.h) */
    float *down_w; /* (r, H) adapter_down.0.weight */
    float *down_b; /* (r)    adapter_down.0.bias */
    float *up_w;   /* (H, r) adapter_up.weight */
    float *up_b;   /* (H)    adapter_up.bias */
} adapter;

/* Floats for one adapter's parameters: 2·H·r + r + H. */
size_t adapter_nparams(int H, int r);
/* The parameter table (ADAPTER_NPARAMS entries) for an adapter carved by adapter_carve. */
int adapter_params(param_desc out[ADAPTER_NPARAMS], int H, int r);
/* Points a's tensors into buf (adapter_nparams floats) in the order of adapter_params. */
void adapter_carve(adapter *a, float *buf, int H, int r, int act);

/* N adapters in one buffer of Σ adapter_nparams(H, r[i]) floats, laid out so that their down
 * projections are one stacked matrix: [all down_w][all down_b][all up_w][all up_b], adapter i's
 * tensors at the offsets adapter_stack_params reports. Carve the gradient buffer the same way and
 * the weight gradients of the down projections are one sgemm too. */
void adapter_stack_carve(adapter *a, int N, float *buf, int H, const int *r, const int *act);
/* The parameter table of adapter i of such a stack: offsets are into the stack's buffer. */
int adapter_stack_params(param_desc out[ADAPTER_NPARAMS], int N, int i, int H, const int *r);

/* AdapterHub's "bert" init: weights N(0, 0.02), biases 0. */
void adapter_init(adapter *a, af_rng *rng);

/* What forward keeps for backward, for up to M tokens of a stack of N adapters (R = Σ r_i). */
typedef struct {
    int M, R;
    float *pre;  /* (M, R) pre-activations, adapter i in columns [R_i, R_i + r_i) */
    float *act;  /* (M, R) activations */
    float *dact; /* (M, R) backward scratch */
    float *dpre; /* (M, R) backward scratch */
} adapter_cache;

/* Floats adapter_cache_carve takes for M tokens: 4·M·Σr. */
size_t adapter_cache_floats(const adapter *a, int N, int M);
void adapter_cache_carve(adapter_cache *c, float *mem, const adapter *a, int N, int M);

/* ups[M,N,H]: ups[m,i,:] = adapter i applied to x[m,:]. N = 1 gives up[M,H]. */
void adapter_stack_forward(float *ups, adapter_cache *c, const float *x, const adapter *a, int N,
                           int M);
/* From dups[M,N,H]: dx[M,H] += ∂/∂x (NULL: not needed); grads[i] (NULL: adapters frozen)
 * accumulates adapter i's weight gradients. Uses the activations of the last forward in c. */
void adapter_stack_backward(float *dx, adapter *grads, adapter_cache *c, const float *dups,
                            const float *x, const adapter *a, int N, int M);

/* One adapter: the stack of one. */
void adapter_forward(float *up, adapter_cache *c, const float *x, const adapter *a, int M);
void adapter_backward(float *dx, adapter *grad, adapter_cache *c, const float *dup, const float *x,
                      const adapter *a, int M);

#endif
