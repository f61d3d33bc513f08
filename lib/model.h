/* model.h: a frozen BERT base with adapters, an optional fusion layer and task heads: the model
 * every af program trains or runs.
 *
 * The base never changes. Adapters sit at the sites of their architecture (Pfeiffer: the FFN
 * output of every layer; Houlsby: the attention output too), N of them stacked per site so their
 * down projections are one sgemm. With a fusion layer, each site combines the N adapters' outputs
 * (site.h); without, N must be 1. Heads read the last layer's [CLS] vector, one head per task.
 *
 * Every parameter the model owns (adapters, fusion, heads) is listed in m->params with its full
 * AdapterHub tensor name, so saving, loading, checkpoints and the optimizer all walk one table. */
#ifndef AF_MODEL_H
#define AF_MODEL_H

#include "adapter.h"
#include "af.h"
#include "bert.h"
#include "fusion.h"
#include "head.h"
#include "safetensors.h"
#include "site.h"

#define MODEL_FORMAT_ADAPTER "af-adapter/1"
#define MODEL_FORMAT_FUSION "af-fusion/1"

typedef enum { PG_ADAPTER, PG_FUSION, PG_HEAD } param_group;

/* One tensor of the model: its full name, where it lives, its gradient (NULL when frozen). */
typedef struct {
    char *name;
    int group;      /* param_group */
    int ndim;
    int64_t shape[2];
    float *data, *grad;
    size_t n;
    int decay;      /* Hugging Face: no weight decay on biases */
    int trainable;  /* e.g. fixed fusion weights are saved but never trained */
} model_param;

typedef struct {
    char *name;     /* the task */
    int L;          /* outputs: labels, or 1 for regression */
    int kind;       /* head_kind */
    char **labels;  /* [L] names (NULL for regression) */
    head w, g;      /* weights and gradient views (g.w1 NULL when frozen) */
    float *mem, *grad;
} model_head;

typedef struct {
    char *name;
    char *path;        /* the file it was read from (NULL: created here) */
    char sha256[65];   /* of that file */
    int r, act;
    uint64_t leave_out; /* the layers its file leaves out (the model leaves out their union) */
} model_adapter;

/* A frozen fusion read from a file (af-fuse --fusion-input): an input of the model's fusion, or
 * of another such fusion (hierarchical fusion, fusion_tree.h). */
typedef struct {
    char *name;  /* its fusion's name, "A,B" ("(A,B),C" when itself hierarchical) */
    char *label; /* "(A,B)": its name as an input */
    char *path;
    char sha256[65];    /* of its file */
    fusion_config fcfg; /* fcfg.N: its inputs */
    float temperature;  /* the one its file records */
    int *in;            /* [fcfg.N] adapter i >= 0, or FUSION_TREE_NODE(k), k earlier */
    float *fmem;        /* its parameters, site after site */
    fusion *fw;         /* [2L] */
} model_fin;

/* How a new adapter is shaped. */
typedef struct {
    int arch;          /* site_arch */
    int reduction;     /* bottleneck = hidden / reduction, unless bottleneck > 0 */
    int bottleneck;
    int act;           /* af_act */
} adapter_spec;

typedef struct af_model {
    bert *base;
    int L, H;              /* base layers and hidden size */
    int arch;              /* site_arch shared by all adapters */
    int N;                 /* adapters */
    uint64_t leave_out;    /* bit l: layer l holds no adapter and no fusion (AdapterHub's
                              leave_out; --drop-layers K leaves out 0 .. K - 1) */
    model_adapter *ad;     /* [N] */
    float *amem, *agrad;   /* every adapter weight, per site a stack (adapter_stack_carve) */
    size_t an;
    adapter *aw, *ag;      /* [2L·N]: site p = 2l + s, adapter i at [p·N + i] */

    int fused;             /* a fusion layer combines the adapters */
    char *fusion_name;     /* "A,B,C": AdapterHub's key, the adapter names joined */
    fusion_config fcfg;
    float *fmem, *fgrad;
    size_t fn;
    fusion *fw, *fg;       /* [2L] */
    int anneal;            /* temperature annealing 50 -> 1 */
    float temperature;     /* softmax temperature when not annealing (1) */
    long fusion_steps;     /* forwards in training so far (the annealing clock) */
    /* Hierarchical fusion: the model's fusion (the root) reads frozen fusions beside adapters.
     * nfin 0: a flat fusion over the N adapters in order. */
    int nfin;
    model_fin *fin;           /* [nfin], each after the fusions it reads */
    int nroot;                /* the root's inputs */
    int *root_in;             /* [nroot] as model_fin.in */
    fusion_tree *trees;       /* [2L] the tree at each site that holds adapters */
    fusion_tree_node *tnodes; /* [2L·nfin] */

    int nheads;
    model_head *heads;

    model_param *params;
    int nparams;

    /* What trains (set before model_prepare): gradients exist only for these. */
    int train_adapters, train_fusion, train_heads;
    /* Inference (set before model_prepare): someone reads every token's fusion weights after a
     * forward (model_fusion_weights). Without it inference runs a few sequences at a time and
     * the last layer computes [CLS] rows only, so the weights are not kept. */
    int keep_fusion_weights;

    /* Runtime, sized by model_prepare. */
    site *sites;           /* [2L]; sites[p].N == 0 where no adapter sits */
    int slots;             /* groups an inference forward runs at once (1: training) */
    site_cache *sc;        /* [slots·2L]: slot k's site p at [k·2L + p] */
    af_arena arena;
    int maxB, maxS, train;
    bert_acts *acts;
    float *dhidden;        /* (maxB·maxS, H) */
    float *cls, *dcls;     /* (maxB, H) gathered [CLS] rows of one head */
    float *logits, *probs, *dlogits; /* (maxB, maxL) */
    float *gold;           /* (maxB) */
    int *ilabels, *rows;   /* (maxB) */
    head_cache hc;
    af_rng rng;            /* dropout */
    float dropout;         /* hidden dropout used by heads (the base's unless overridden) */
    struct layercache *cache; /* the lower layers' output per example (model_run_cached), or
                                 NULL; the caller's */
} af_model;

/* A model on a base with no adapters yet. */
void model_init(af_model *m, bert *base);
void model_free(af_model *m);

/* A new adapter to train (N = 1), AdapterHub init drawn from seed. */
/* An adapter or task name: 1 to 128 of [A-Za-z0-9_-], not starting with '-' (names are parts of
 * tensor names, and a fusion's name joins its adapters' with commas). -1 with a message naming
 * `where` (a file; may be NULL) and `what` ("adapter", "task") otherwise. */
int model_name_check(const char *what, const char *name, const char *where, af_err *e);
int model_new_adapter(af_model *m, const char *name, const adapter_spec *spec, uint64_t seed,
                      af_err *e);
/* Reads N adapter files (each checked against the base's fingerprint; all must share the
 * architecture). Their heads come along (model_load_heads_from picks them up). */
int model_load_adapters(af_model *m, const char **paths, int N, af_err *e);
/* Leaves layers (bits of mask) without adapters and fusion, as AdapterHub's leave_out: before
 * a new adapter, or after loading adapters and before their fusion (the adapters' weights
 * there are dropped). -1 when no layer would keep adapters. model_load_adapters takes each
 * file's own (config.leave_out): fused adapters left out of different layers are fused only
 * where they all are. */
int model_leave_out(af_model *m, uint64_t mask, af_err *e);
/* Whether layer l is left out; how many of the lowest layers hold no adapter (AdapterDrop's
 * K: nothing below it trains); a mask as "0-3,7" (a static buffer). */
int model_left_out(const af_model *m, int l);
int model_frozen_layers(const af_model *m);
const char *model_leave_out_str(uint64_t mask, int L);
/* A new fusion layer over the loaded adapters. */
int model_new_fusion(af_model *m, const fusion_config *cfg, int anneal, uint64_t seed, af_err *e);
/* Reads a fusion file made for the loaded adapters: checks their names and sha256 against its
 * record, loads the fusion weights, its heads, and updated adapter weights if it carries them. */
int model_load_fusion(af_model *m, const char *path, af_err *e);

/* Hierarchical fusion: reads n fusion files (--fusion-input) to be inputs of the fusion made next
 * (model_new_fusion) or read next (model_load_fusion), after the adapters. Each file's inputs
 * (the adapters and fusions its record names, with their sha256) must be among the loaded
 * adapters and the other files, each reachable once (no adapter or fusion under two fusions, no
 * cycle); a file trained with --unfreeze-adapters brings its adapters' weights. The new fusion's
 * inputs are the adapters and fusions no other file reads, in the order of pos_adapter[i] and
 * pos_fin[j] (their places on the command line; NULL: adapters first, then the fusions). */
int model_load_fusion_inputs(af_model *m, const char **paths, int n, const int *pos_adapter,
                             const int *pos_fin, af_err *e);
/* The name of the model's fusion's input j, and of fusion input k's input j: an adapter's
 * name, or "(A,B)" for a fusion. */
const char *model_input_name(const af_model *m, int j);
const char *model_fin_input_name(const af_model *m, int k, int j);
/* Node weights of the last forward at site p for level k (0..nfin-1: the fusion inputs, nfin:
 * the model's fusion): (B·S, that fusion's N), or NULL. */
const float *model_fusion_weights_level(const af_model *m, int p, int k);

/* A new head for a task, of a head_kind. labels: L names (classification: L >= 2;
 * multi-label: L >= 1), or NULL for a regression (L = 1). */
int model_add_head(af_model *m, const char *task, int kind, int L, char **labels, uint64_t seed,
                   af_err *e);
/* Adds the heads recorded in a file (its "heads" metadata and heads.* tensors). */
int model_load_heads(af_model *m, const st_file *f, af_err *e);
int model_head_index(const af_model *m, const char *task);

/* Builds m->params (call after the adapters, fusion and heads are in place, and after setting
 * train_*). Gradient buffers are allocated for what trains. */
void model_finalize(af_model *m);
/* Copies every tensor of m->params found in f (checkpoints, fusion files with adapters). With
 * require, a missing tensor is an error. Shapes must match. */
int model_load_params(af_model *m, const st_file *f, int group_mask, int require, af_err *e);

/* Sizes the activation arena for batches up to maxB × maxS (model_run takes larger batches in
 * passes of maxB rows). */
void model_prepare(af_model *m, int maxB, int maxS, int train);
/* The bytes model_prepare would take for maxB × maxS; rows per training pass for batches of
 * `rows` × maxS: rows, or the fewest equal passes whose arena stays within budget bytes (down to
 * 1 row). Both leave m unprepared: model_prepare next. */
size_t model_arena_bytes(af_model *m, int maxB, int maxS, int train);
int model_pass_rows(af_model *m, int rows, int maxS, size_t budget);

/* One batch: forward, and with train also backward (gradients accumulate; zero them first).
 * head_of[b] is the head of row b; gold[b·ldg] its label id (classification) or target value
 * (regression), gold[b·ldg + j] for j < L its 0/1 targets (multi-label; ldg >= the largest such
 * L), or gold == NULL (no loss). out[b·ldo + j] receives the probabilities (softmax; per-label
 * sigmoids for multi-label) or the score for regression. Returns the mean loss over the rows (NaN
 * when gold == NULL), including the fusion regulariser when training fusion. A batch of more rows
 * than model_prepare's maxB runs in passes of maxB rows (micro-batches): the same loss and
 * gradients up to rounding, for the activations of maxB rows; the fusion's annealing clock still
 * counts one per batch. */
double model_run(af_model *m, const bert_batch *b, const int *head_of, const float *gold, int ldg,
                 int train, float *out, int ldo);
/* model_run for rows that are examples ex[b] of a training set: with K = model_frozen_layers
 * > 0 and m->cache set, a training forward takes layer K's input from the cache where every row
 * is in it, and puts in the rows it computes (layercache.h). A training forward with K > 0
 * runs the layers below K without dropout, cache or not, so that it computes the same either
 * way. NaN when the cache fails (m->cache->failed, ->err say how). */
double model_run_cached(af_model *m, const bert_batch *b, const int *ex, const int *head_of,
                        const float *gold, int ldg, int train, float *out, int ldo);
/* Weights over adapters of the last forward (its last pass) at site p = 2l + s: (B·S, N), or
 * NULL (also after an inference forward unless keep_fusion_weights was set). */
const float *model_fusion_weights(const af_model *m, int p);
/* The fusion regulariser of the current weights (0 unless attention fusion trains). */
double model_fusion_reg(const af_model *m);

/* Fills a writer with the model's tensors of the given groups and its metadata for a file of
 * `format`; `training` (JSON text or NULL) goes in as metadata. The writer references the model's
 * memory: write it before changing the model. */
void model_writer(af_model *m, st_writer *w, const char *format, int group_mask,
                  const char *training);

/* Label handling for a head: the id of a JSON label (an integer or a string; integers are matched
 * by name first, then taken as an index), or -1. */
int model_label_id(const model_head *h, int is_int, long ival, const char *sval);

/* The adapter sites of an architecture: bit s set when site s of every layer holds adapters. */
int model_site_mask(int arch);

#endif
