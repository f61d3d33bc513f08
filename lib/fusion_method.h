/* fusion_method.h: what one fusion method is to the generic code in fusion.c (inside libaf only;
 * programs use fusion.h). Each method is one row, `fusion_method_ops`, in a file of its own
 * (fusion_attention.c holds attention and static, which share their arithmetic); fusion.c looks
 * the row up by cfg.method and never switches on the method. A new method is a new file, a row
 * in fusion.c's table and a name in fusion.h's enum. */
#ifndef AF_FUSION_METHOD_H
#define AF_FUSION_METHOD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "fusion.h"

/* A dimension of a parameter, resolved against the config. */
typedef enum { FD_NONE, FD_H, FD_3H, FD_H2, FD_N } fusion_dim;
/* Its trainability: always, or unless the weights are fixed (cfg.fixed). */
enum { FP_TRAIN = 1, FP_TRAIN_UNLESS_FIXED = 2 };

/* One parameter: AdapterHub's name under the fusion prefix, shape, weight decay (0 for biases),
 * trainability, and the fusion field that points at it. */
typedef struct {
    const char *name;
    fusion_dim rows, cols; /* cols FD_NONE: a vector */
    int decay, train;
    size_t field; /* offsetof(fusion, ...) of its float pointer */
} fusion_param_spec;

/* Carving a cache: what the forward keeps (kept), the temporaries of the backward (scratch;
 * shared between layers with fusion_cache_carve_shared), and a dropout mask. With mem NULL the
 * walk only counts. */
typedef struct {
    fusion_cache *c;
    float *mem, *scratch;
    size_t n, k; /* floats kept, floats of scratch */
    int shared;
} fusion_layout;
float *fusion_take(fusion_layout *L, size_t count);
float *fusion_take_scratch(fusion_layout *L, size_t count);
void fusion_take_mask(fusion_layout *L, size_t count);

typedef struct {
    const char *name;
    const fusion_param_spec *params; /* in the file's order */
    int nparams;
    const char *const *options; /* the options of its own (af-fuse --NAME with '_' as '-'; keys
                                   of the file's config), NULL-terminated; NULL: none */
    int uses_x;  /* the query input x reaches the output (dx is computed) */
    int dropout; /* cfg.dropout applies in training */
    /* Checks of the method's own options beyond fusion_config_check's (NULL: none). */
    int (*check)(const fusion_config *cfg, af_err *e);
    void (*init)(fusion *f, af_rng *rng);
    /* Takes the method's cache fields (p, the weights over adapters, is taken by fusion.c). */
    void (*layout)(fusion_layout *L, const fusion_config *cfg, int M);
    void (*forward)(float *o, fusion_cache *c, const float *x, const float *ups, const fusion *f,
                    int M, float T, af_rng *rng);
    void (*backward)(float *dx, float *dups, fusion *g, fusion_cache *c, const float *dout,
                     const float *x, const float *ups, const fusion *f, int M);
    /* The weights over the inputs when they are the same for every token (NULL: they are not),
     * computed as the forward computes them. */
    void (*static_weights)(float *w, const fusion *f);
    /* A term of the loss on the parameters (NULL: none): its value, and its gradient times scale
     * accumulated into g (attention's value regulariser). */
    double (*reg_forward)(const fusion *f);
    void (*reg_backward)(fusion *g, const fusion *f, float scale);
    /* The options a file records in its config and reads back (NULL: none). */
    void (*to_json)(cJSON *cfg_json, const fusion_config *cfg);
    int (*from_json)(fusion_config *cfg, const cJSON *cfg_json, af_err *e);
} fusion_method_ops;

extern const fusion_method_ops fusion_attention_ops, fusion_static_ops, fusion_multihead_ops,
    fusion_weighted_ops, fusion_gating_ops;

/* Helpers the methods share (fusion.c): o[m] = Σ_i p[m,i]·ups[m,i]; its backward, dp overwritten
 * and dups (NULL: not needed) accumulated. */
void fusion_mix_forward(float *o, const float *p, const float *ups, int M, int N, int H);
void fusion_mix_backward(float *dp, float *dups, const float *dmix, const float *p,
                         const float *ups, int M, int N, int H);
void fusion_normal(float *t, size_t n, af_rng *rng); /* N(0, 0.02) */

#endif
