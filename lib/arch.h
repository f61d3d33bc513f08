/* arch.h: the architectures af loads, one table entry each (as llama.cpp and libarchive keep
 * their formats): Hugging Face's config keys and defaults, the state-dict names of the encoder's
 * tensors (with and without the model prefix), of its MLM head, where AdapterHub hangs adapters
 * and fusion layers, and the few places the forward differs. Every tensor name af reads or writes
 * is made here; adding an architecture whose layers are BERT's post-LN layers is a new entry.
 *
 * The three entries share af's layer (bert.h): q, k, v, attention output, LN1, FFN in, FFN out,
 * LN2. What differs:
 *   BERT        BertModel: positions 0..S-1, token types, eps from the config.
 *   RoBERTa     RobertaModel: positions count the non-pad tokens from pad_token_id + 1 (HF's
 *               create_position_ids_from_input_ids), pads get pad_token_id; one token type.
 *   DistilBERT  DistilBertModel: no token types, no dropout after the attention's out_lin, eps
 *               fixed at 1e-12; sinusoidal position init when sinusoidal_pos_embds (a loaded
 *               checkpoint keeps its table); the head's dropout is seq_classif_dropout. */
#ifndef AF_ARCH_H
#define AF_ARCH_H

#include <stddef.h>

enum { ARCH_BERT, ARCH_ROBERTA, ARCH_DISTILBERT, ARCH_COUNT };

/* The encoder's tensors, in state_dict order. Per-layer names hold one %d (the layer). */
enum {
    AT_WORD,
    AT_POS,
    AT_TYPE,
    AT_EMB_LN_W,
    AT_EMB_LN_B, /* embeddings */
    AT_Q_W,
    AT_Q_B,
    AT_K_W,
    AT_K_B,
    AT_V_W,
    AT_V_B, /* per layer from here */
    AT_AO_W,
    AT_AO_B,
    AT_LN1_W,
    AT_LN1_B,
    AT_FF1_W,
    AT_FF1_B,
    AT_FF2_W,
    AT_FF2_B,
    AT_LN2_W,
    AT_LN2_B,
    AT_COUNT
};
#define AT_FIRST_LAYER AT_Q_W

/* bert_config's fields, by their config.json key. */
enum {
    AK_VOCAB,
    AK_HIDDEN,
    AK_LAYERS,
    AK_HEADS,
    AK_FFN,
    AK_MAX_POS,
    AK_TYPE_VOCAB,
    AK_PAD,
    AK_ACT,
    AK_DROPOUT,
    AK_ATTN_DROPOUT,
    AK_EPS,
    AK_HEAD_DROPOUT,
    AK_SINUSOIDAL,
    AK_COUNT
};

/* MLM head tensors (BertForMaskedLM, RobertaForMaskedLM, DistilBertForMaskedLM): transform dense,
 * its LayerNorm, and the decoder's own bias (its weight is tied to the word embeddings). */
enum { AM_DENSE_W, AM_DENSE_B, AM_LN_W, AM_LN_B, AM_BIAS, AM_COUNT };

enum { ARCH_POS_RANGE, ARCH_POS_FROM_PAD }; /* position ids */

typedef struct {
    int vocab_size, hidden, layers, heads, ffn, max_pos, type_vocab, pad_id;
    float ln_eps, hidden_dropout, attn_dropout;
    float head_dropout; /* < 0: the hidden dropout's unless the config sets the key */
} arch_defaults;

typedef struct {
    const char *model_type; /* config.json "model_type" */
    const char *display;    /* for people: "BERT" */
    const char *class_name; /* "architectures" of a saved base */
    const char *mlm_class;  /* and of one with its MLM head */
    const char *prefix;     /* state-dict prefix of the base model in AdapterHub's files: "bert" */
    const char *body[2];    /* name starts of the encoder's tensors, without prefix */
    const char *buffers[2]; /* non-parameters the state dict may hold (ignored) */
    const char *tensor[AT_COUNT]; /* without prefix; NULL: the architecture has none */
    const char *layer;            /* a layer's path, %d: where its adapter sites hang */
    const char *site[2];          /* the adapter sites under it (BERT_SITE_ATTN, BERT_SITE_OUT) */
    const char *key[AK_COUNT];    /* NULL: not configurable, the default holds */
    arch_defaults dflt;           /* HF's config class defaults */
    const char *mlm[AM_COUNT];
    int mlm_act;          /* the MLM transform's activation: -1, the config's; else an af_act */
    int pos;              /* ARCH_POS_* */
    int attn_out_dropout; /* dropout after the attention output projection */
} af_arch;

const af_arch *arch_get(int id);
/* The entry for a config's model_type, NULL when af knows none. */
int arch_find(const char *model_type);
/* "bert, roberta, distilbert": for messages. */
const char *arch_list(void);

/* A tensor's name: with the model prefix when prefixed (as AdapterHub and *ForMaskedLM store
 * them), else as the bare *Model does. Returns 0, or -1 when the architecture has no such
 * tensor or buf is too small. */
int arch_tensor_name(char *buf, size_t n, const af_arch *a, int t, int layer, int prefixed);
/* AdapterHub's names: an adapter's parameter at (layer, site), a fusion layer's parameter
 * (key: the adapter names joined by commas), a prediction head's parameter. */
int arch_adapter_name(char *buf, size_t n, const af_arch *a, int layer, int site,
                      const char *adapter, const char *param);
int arch_fusion_name(char *buf, size_t n, const af_arch *a, int layer, int site, const char *key,
                     const char *param);
int arch_head_name(char *buf, size_t n, const char *task, const char *param);
/* Site path for messages: "attention.output" */
const char *arch_site(const af_arch *a, int site);

#endif
