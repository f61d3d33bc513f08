/* bert.h: the frozen BERT encoder (Hugging Face layout), forward and backward.
 *
 * Per layer l (post-LN BERT, as HF BertLayer):
 *   attention block: h1 = Dropout(Wo·MHA(x) + bo);  site ATTN: a = LN1(h1 + x)
 *   FFN block:       h2 = Dropout(W2·act(W1·a + b1) + b2);  site OUT: y = LN2(h2 + a)
 * A "site" is where adapters and fusion plug in (lib/README.md, "The model"): a hook may replace
 * out = LN(h + r) by its own function of h, r and the site's original LayerNorm. */
#ifndef AF_BERT_H
#define AF_BERT_H

#include "af.h"
#include "arch.h"
#include "safetensors.h"

enum { BERT_SITE_ATTN = 0, BERT_SITE_OUT = 1, BERT_NSITES = 2 };

typedef struct {
    int arch; /* ARCH_* (arch.h): names, config keys, forward differences */
    int vocab_size, hidden, layers, heads, ffn, max_pos, type_vocab, pad_id;
    int act;             /* af_act from config hidden_act */
    float ln_eps;
    float hidden_dropout, attn_dropout;
    float head_dropout;   /* classifier_dropout (DistilBERT: seq_classif_dropout) when */
    int has_head_dropout; /* set, else the head takes hidden_dropout: see bert_head_dropout */
    int sinusoidal;       /* DistilBERT sinusoidal_pos_embds: only bert_init_random reads it */
} bert_config;

/* One layer's weights, [out, in] as nn.Linear stores them. */
typedef struct {
    float *qkv_w;              /* (3H, H): query, key, value stacked, so one sgemm does all three */
    float *qkv_b;              /* (3H) */
    float *ao_w, *ao_b;        /* (H, H), (H): attention.output.dense */
    float *ln1_w, *ln1_b;      /* (H): attention.output.LayerNorm */
    float *ff1_w, *ff1_b;      /* (F, H), (F): intermediate.dense */
    float *ff2_w, *ff2_b;      /* (H, F), (H): output.dense */
    float *ln2_w, *ln2_b;      /* (H): output.LayerNorm */
} bert_layer;

typedef struct {
    float *word_emb;           /* (V, H) */
    float *pos_emb;            /* (P, H) */
    float *type_emb;           /* (T, H) */
    float *emb_ln_w, *emb_ln_b;/* (H) */
    bert_layer *layer;         /* [L] */
} bert_weights;

typedef struct {
    bert_config cfg;
    bert_weights w;
    float *mem;                /* one allocation holding every weight as float32 */
    size_t nparams;
    void *region;              /* when bert_load mapped the file into mem: the anonymous mapping */
    size_t region_len;         /* mem lies in (freed with munmap), else NULL */
    char fingerprint[65];      /* see bert_fingerprint */
    char *dir;
    /* bert_load_16: a base stored as F16 or BF16 keeps its layers' weights so (w16, mem's layer
     * layout); each layer is widened into stage when the encoder reaches it, and mem's layer part
     * is never written (its pages never become resident). 0 / NULL otherwise. */
    int w16_dtype; /* ST_F16 or ST_BF16 */
    uint16_t *w16; /* [layers × layer params] */
    int we16_dtype;     /* the word embeddings likewise: rows widened as looked up */
    uint16_t *we16;     /* [V × H], or NULL when each row is read from the file as looked up: */
    int we_fd;          /* model.safetensors (we_path), read at we_off; stored as we_stored */
    int we_stored;
    long long we_off;
    char *we_path;
    int rounded; /* bert_load_as rounded the stored weights to w16_dtype (not as stored) */
    struct bert_stage *stage;
} bert;

/* Loads config.json + model.safetensors from a Hugging Face directory (F32/F16/BF16; model_type
 * bert (or none), roberta or distilbert; names with or without the model prefix, "bert."; LayerNorm
 * gamma/beta or weight/bias; pooler/cls/classifier/lm_head ignored).
 * An F32 word-embedding table is mapped from the file into mem (copy-on-write, so writes stay
 * private) rather than read: rows no batch uses never take memory. mem keeps its layout. */
int bert_load(bert *m, const char *dir, af_err *e);
/* The same, but a base whose layers are stored as F16 or BF16 keeps them 16-bit in memory and
 * widens one layer at a time, into one buffer, as the encoder runs (the same widening as at load:
 * the same bits out): the layers take half the memory. For running the base frozen (inference,
 * adapters, fusion), never for saving or training it: m->w.layer's tensors are not filled. */
int bert_load_16(bert *m, const char *dir, af_err *e);
/* bert_load_16 with the layers and word embeddings held as dtype (ST_F16 or ST_BF16) whatever the
 * file stores: F32 values are rounded to nearest, ties to even (as PyTorch's .half() and
 * .bfloat16()); the other 16-bit type goes through float32 (exact) and is rounded so. A value past
 * F16's range is an error naming the tensor (BF16 has float32's range). The fingerprint stays the
 * file's: the weights computed with are the file's, rounded, which m->rounded records. dtype 0:
 * bert_load_16; ST_F32: bert_load. */
int bert_load_as(bert *m, const char *dir, int dtype, af_err *e);
/* A new model with BERT's init: N(0, 0.02) linear and embedding weights, zero biases, LN = 1/0. */
void bert_init_random(bert *m, const bert_config *cfg, uint64_t seed);
void bert_free(bert *m);
/* Parses a config.json text into cfg. */
int bert_config_parse(bert_config *cfg, const char *json, const char *name, af_err *e);

/* Fingerprint of a base: sha256 over the config's computation keys (sizes, activation, LayerNorm
 * eps, padding id; not the dropout rates) and every byte of model.safetensors, the file hashed in
 * 64 MiB chunks on the thread pool (about 0.2 s for BERT-base's 440 MB with the SHA extensions
 * and 2 threads). An adapter records it; any other base, or the same weights under another
 * config, is refused. A model from bert_init_random has the sha256 of its seed and config until
 * it is saved and loaded. */
int bert_fingerprint(const char *dir, const bert_config *cfg, char out[65], af_err *e);

/* A batch of B sequences padded to S (the longest in the batch). Arrays are [B*S]. */
typedef struct {
    int B, S;
    const int *ids, *type_ids, *mask;
} bert_batch;

/* Hooks at the adapter sites. */
typedef struct {
    void *ctx;
    /* Non-zero when the hook replaces out = LN(h + r) at (layer, site). */
    int (*active)(void *ctx, int layer, int site);
    /* out[M,H] from h[M,H] and r[M,H]; ln_w/ln_b/eps: the site's original LayerNorm. The hook keeps
     * what its backward will need (it knows layer and site). M = B*S, padding tokens included.
     * slot: which of the hook's `slots` sets of scratch to use (always 0 but in grouped inference,
     * where calls on different slots may run at the same time, on different threads). */
    void (*forward)(void *ctx, int layer, int site, int slot, float *out, const float *h,
                    const float *r, const float *ln_w, const float *ln_b, float eps, int M);
    /* Sets (overwrites) dh, dr from dout, for the h, r of the last forward. */
    void (*backward)(void *ctx, int layer, int site, float *dh, float *dr, const float *dout,
                     const float *h, const float *r, const float *ln_w, const float *ln_b,
                     float eps, int M);
    /* Non-zero: forward and backward read h and r only as h + r (Pfeiffer adapters), so the
     * encoder may pass h = h + r and r = NULL (it still wants both dh and dr set). */
    int sum_only;
    /* Grouped inference may run this many groups at once, each calling forward with its own
     * slot 0 .. slots - 1; 0 or 1: one call at a time. */
    int slots;
} bert_hooks;

/* Activations for one batch shape, carved from an arena. */
typedef struct bert_acts bert_acts;

enum { BERT_PLAN_ATTN_HOOKS = 1, BERT_PLAN_SUM_HOOKS = 2 }; /* bert_acts_new_frozen's flags */

/* Bytes an arena needs for activations of up to B×S tokens (train: keep what backward needs). */
size_t bert_acts_bytes(const bert_config *cfg, int B, int S, int train);
bert_acts *bert_acts_new(af_arena *a, const bert_config *cfg, int B, int S, int train);

/* Inference activations that keep only the last layer's hidden states (the layers take two
 * buffers in turn): bert_hidden(l) is NULL for l < layers - 1. No attention probabilities are
 * kept and the feed-forward runs in blocks of rows. group > 0: each layer runs a few whole
 * sequences at a time (bert_lean_rows rows at most), so its buffers hold those rows, not the
 * batch's: for hooks that keep nothing per row past their call (adapters; not a fusion whose
 * weights are read after the forward). group is also the number of groups that may run at once,
 * each on its own thread with its own buffers and single-threaded matrix products (no product
 * split between threads: each thread packs its operands once, and nothing waits between
 * products): the answers of one at a time (the same bits wherever OpenBLAS runs a product and its
 * parts with the same kernel; it picks kernels by shape). A forward runs them so when the pool
 * has that many threads, the hooks that many slots (or none is active) and the batch shares out
 * evenly enough; 0: the batch at once. */
size_t bert_acts_bytes_lean(const bert_config *cfg, int B, int S, int group);
bert_acts *bert_acts_new_lean(af_arena *a, const bert_config *cfg, int B, int S, int group);
/* The most rows a hook is called with in a forward through such acts (B·S when not grouped). */
int bert_lean_rows(int B, int S, int group);
/* How many groups should run at once on `threads` threads: all of them for a narrow encoder,
 * whose products are too small to split well between threads, one for a wide one, whose split
 * products run as fast and which would hold a set of buffers per group for nothing. */
int bert_lean_groups(const bert_config *cfg, int threads);

/* Activations for training adapters on a frozen base: bert_backward will be called with
 * grads == NULL and hooks active from site `lowest` (2l + s) up, so only what that backward reads
 * is kept: layers below the lowest site keep nothing, forward-only buffers share memory with the
 * backward scratch, and with cls_only (set on the acts; the forward then refuses to run without
 * it) the last layer keeps [CLS] rows only. A training forward with a hook below `lowest`
 * returns NULL, as does a backward with grads. lowest = 2·layers: nothing hooked, nothing kept. */
size_t bert_acts_bytes_frozen(const bert_config *cfg, int B, int S, int lowest, int cls_only,
                              size_t hook_floats, int flags);
bert_acts *bert_acts_new_frozen(af_arena *a, const bert_config *cfg, int B, int S, int lowest,
                                int cls_only, size_t hook_floats, int flags);
/* flags: what the hooks may do. Without BERT_PLAN_ATTN_HOOKS no attention site is hooked (a
 * training forward with one returns NULL): those sites then keep their LayerNorm's input h1 + x,
 * the hidden states rotate through two buffers as in lean acts, and bert_hidden(l) is NULL for
 * l < layers - 1. With BERT_PLAN_SUM_HOOKS the hooks are sum_only (else a training forward returns
 * NULL) and the output sites from the lowest hooked layer up keep h2 + a instead of h2 and a.
 * Frozen acts: hook_floats floats of scratch for the hooks, in the block that holds the layers'
 * forward-only buffers and the backward's scratch, none of which is live while a hook runs.
 * A hook may use it only during its own forward or backward call (what it keeps from forward to
 * backward must live elsewhere); the h, r, out, dh, dr and dout it is given are never in it.
 * NULL for other acts or hook_floats == 0. */
float *bert_acts_hook_scratch(const bert_acts *acts);

/* on: the caller reads only the first token ([CLS]) of every sequence from the last layer, and
 * its gradient flows in only there. The last layer then computes keys and values for every token
 * but queries, attention, output projection, FFN and sites for the first tokens only (hooks at
 * its sites see M = B rows, one per sequence): ~85% of the layer's work saved, results equal.
 * bert_hidden(L - 1) (and after a backward bert_dhidden(L - 1)) is then valid at the first token
 * of each sequence only, and the backward reads dout there only. Off by default. */
void bert_acts_cls_only(bert_acts *acts, int on);

/* A task head's dropout: hidden_dropout, or the architecture's own (DistilBERT). */
float bert_head_dropout(const bert_config *c);

/* The longest sequence the base takes: max_position_embeddings, less pad_token_id + 1 where
 * positions count from there (RoBERTa: 514 - 2 = 512). */
int bert_max_len(const bert_config *c);

/* 0 when every id, type id and mask value of b is in range for m and S <= max_pos; otherwise -1
 * with a message naming the sequence, the token and the value. */
int bert_batch_check(const bert *m, const bert_batch *b, af_err *e);

/* Forward. train: dropout on (seeded by rng; rng may be NULL when the config's dropout is 0, or
 * with train = 0) and activations kept for backward. Hooks are asked once per site per forward.
 * Returns the last layer's hidden states [B*S, H] (owned by acts), or NULL when the batch fails
 * bert_batch_check, exceeds the B×S the acts were made for, or asks train of inference-only acts. */
const float *bert_forward(const bert *m, bert_acts *acts, const bert_batch *b,
                          const bert_hooks *hooks, int train, af_rng *rng);
/* A forward in two calls, for a model whose layers below K hold no hook (AdapterDrop: their
 * output is the same in every epoch and may be kept, layercache.h). bert_forward_begin takes
 * the batch and returns the buffer of layer K's input, [B*S, H]: with lower, computed (the
 * embeddings and layers 0 .. K - 1 without dropout, whatever train comes next, so that the
 * output is the same every time it is computed); without, for the caller to fill (rows at
 * padding positions are read by nothing that reaches a real token, but must be finite).
 * bert_forward_end then runs layers K .. L - 1 as bert_forward would (hooks, train, rng) and
 * returns what bert_forward returns; the backward stops at K (nothing below is hooked). 1 <= K <
 * layers; NULL where bert_forward would give NULL, or when a hook is active below K. */
float *bert_forward_begin(const bert *m, bert_acts *acts, const bert_batch *b, int K, int lower);
const float *bert_forward_end(const bert *m, bert_acts *acts, const bert_hooks *hooks, int train,
                              af_rng *rng);
/* Hidden states after layer l (l = -1: embeddings), valid after a forward. */
const float *bert_hidden(const bert_acts *acts, int l);
/* dLoss/d(hidden states after layer l), valid after a backward for the layers it went through
 * completely (all of them with grads; in frozen mode those above the lowest hooked site); else NULL. */
const float *bert_dhidden(const bert_acts *acts, int l);

/* Gradients of every weight (full fine-tuning, pretraining), same layout as bert_weights. */
typedef struct {
    bert_weights g;
    float *mem;
} bert_grads;
void bert_grads_init(bert_grads *g, const bert_config *cfg);
void bert_grads_zero(bert_grads *g, const bert_config *cfg);
void bert_grads_free(bert_grads *g);

/* Backward from dout = dLoss/d(last hidden) [B*S, H]. With grads == NULL the weights are frozen:
 * no weight gradient is computed, and nothing below the lowest active hook is visited. With grads,
 * every weight gradient (embeddings included) is accumulated, except the LayerNorm of a hooked
 * site, which belongs to the hook then. acts must have been made with train = 1; after a forward
 * with train = 0 on them, the gradients are those of the dropout-free (inference) function. */
void bert_backward(const bert *m, bert_acts *acts, const float *dout, const bert_hooks *hooks,
                   bert_grads *grads);

/* Writes a Hugging Face directory: config.json and model.safetensors (the architecture's names
 * with its model prefix, "bert."; extra tensors, e.g. an MLM head, may be appended by the caller
 * via `extra`). */
int bert_save(const bert *m, const char *dir, st_writer *extra, af_err *e);

#endif
