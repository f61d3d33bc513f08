/* mlm.h: masked-language-model pretraining pieces: the MLM head, the masking of a batch, and
 * the packing of a token stream into fixed-length sequences.
 *
 * Head (HF BertLMPredictionHead, as BertForMaskedLM has it; RobertaLMHead and DistilBERT's
 * vocab_transform/vocab_layer_norm/vocab_projector compute the same under the names of arch.h's
 * mlm table, RoBERTa's with GELU whatever hidden_act says):
 *   t = LN(act(W·h + b))       cls.predictions.transform.{dense,LayerNorm}
 *   logits = t·Eᵀ + bias       decoder tied to bert.embeddings.word_embeddings (E), own bias
 * Loss: mean cross-entropy over the masked positions only (HF labels -100 elsewhere). The head
 * runs on the masked rows alone, which gives the same loss and gradients for ~15% of the work. */
#ifndef AF_MLM_H
#define AF_MLM_H

#include "af.h"
#include "bert.h"
#include "safetensors.h"

/* The head's parameters; the gradient buffer has the same layout. */
typedef struct {
    float *dense_w;  /* (H, H) cls.predictions.transform.dense.weight */
    float *dense_b;  /* (H)    cls.predictions.transform.dense.bias */
    float *ln_w;     /* (H)    cls.predictions.transform.LayerNorm.weight */
    float *ln_b;     /* (H)    cls.predictions.transform.LayerNorm.bias */
    float *bias;     /* (V)    cls.predictions.bias (= decoder.bias in HF, tied) */
} mlm_weights;

typedef struct {
    int V, H, act;
    int arch; /* its tensor names (arch.h) */
    float eps;
    mlm_weights w, g;
    float *mem, *gmem; /* [nparams] each */
    size_t nparams;
} mlm_head;

/* A head for cfg with HF's init: dense N(0, 0.02) from seed, zero biases, LayerNorm 1/0. */
void mlm_init(mlm_head *h, const bert_config *cfg, uint64_t seed);
void mlm_free(mlm_head *h);
/* Reads the head (cls.predictions.*, lm_head.*, vocab_*: the architecture's names) from a
 * *ForMaskedLM file into an initialised head. Returns 1 when the file has them all, 0 when it has
 * none (a bare *Model checkpoint: the head stays as initialised), -1 when only some are there or
 * a shape or dtype is wrong. */
int mlm_load(mlm_head *h, const st_file *f, af_err *e);
/* Adds the head's tensors under their HF names to w (data referenced, keep h alive). The tied
 * decoder weight is not written, as HF's save_pretrained leaves shared tensors out. */
void mlm_save_add(const mlm_head *h, st_writer *w);

/* Work space for maxn masked positions (mlm_forward grows it when a batch has more). */
typedef struct {
    int maxn;
    float *x;        /* (n, H) the encoder's hidden states at the masked positions */
    float *u;        /* (n, H) dense output, before the activation */
    float *a;        /* (n, H) after the activation */
    float *t;        /* (n, H) after LayerNorm */
    float *mean, *rstd; /* (n) */
    float *logits;   /* (n, V) logits, then probabilities after forward */
    float *dt, *da;  /* (n, H) */
    float *dx;       /* (n, H) */
} mlm_acts;

void mlm_acts_init(mlm_acts *a, const mlm_head *h, int maxn);
void mlm_acts_free(mlm_acts *a);

/* Forward over n masked positions: pos[i] is a row of hidden (B*S rows of H), labels[i] its
 * original token. word_emb (V, H) is the encoder's. Returns the summed cross-entropy (in double,
 * divide by n for HF's mean) and sets *correct to how many argmaxes equal the label. n may be 0. */
double mlm_forward(const mlm_head *h, mlm_acts *a, const float *hidden, const float *word_emb,
                   const int *pos, const int *labels, int n, int *correct);
/* Backward of scale × (summed cross-entropy) for the last forward: accumulates the head's
 * gradients into h->g, the decoder's into dword_emb (V, H), and dLoss/dhidden into the rows pos
 * of dhidden (B*S, H). scale is 1/n for the mean, 1/(n·accumulate) across micro-batches. */
void mlm_backward(mlm_head *h, mlm_acts *a, float *dhidden, float *dword_emb,
                  const float *word_emb, const int *pos, const int *labels, int n, float scale);

/* ---- masking ------------------------------------------------------------------------------- */
/* HF DataCollatorForLanguageModeling (and, with whole_word, DataCollatorForWholeWordMask):
 * each non-special token is chosen with probability prob; a chosen token becomes [MASK] 80% of
 * the time, a random non-special token 10%, and stays itself 10%. Whole-word masking picks words
 * in random order until round(prob × tokens) are covered, as BERT's create_pretraining_data.py
 * does. A word is, in WordPiece, a token and the "##" continuations after it; in byte-level BPE
 * (GPT-2's, RoBERTa's), a token that begins with "Ġ" (U+0120, the byte-level space) or follows a
 * special token, and the tokens after it that do not. */
typedef struct {
    int V, mask_id;
    float prob;
    int whole_word;
    uint8_t *special;  /* [V] never chosen, never drawn as a random replacement */
    uint8_t *cont;     /* [V] 1 for a token that continues a word ("##..."; BPE: no "Ġ") */
    int *normal;       /* ids that are not special, for random replacement */
    int nnormal;
    int *scratch;      /* [2 * max_len] word starts and order, for whole-word masking */
    int scratch_cap;
} mlm_masker;

/* tokens[V] are the vocabulary's entries (only their word prefixes and, in WordPiece, the
 * bracketed reserved entries like [unused0] matter); special lists the ids never to mask
 * ([CLS], [SEP], [PAD], [MASK], [UNK], or <s> </s> <pad> <mask> <unk>), -1s ignored. bytelevel:
 * the vocabulary is byte-level BPE (its words as above; brackets are ordinary text there). */
int mlm_masker_init(mlm_masker *m, const char *const *tokens, int V, const int *special,
                    int nspecial, int mask_id, float prob, int whole_word, int bytelevel,
                    af_err *e);
void mlm_masker_free(mlm_masker *m);
/* Masks one sequence in place: ids[len] become the model's input; the chosen positions (offset
 * by base, the row's first index in the batch) and their original ids are appended to pos and
 * labels at *n. Returns how many were chosen. */
int mlm_mask(mlm_masker *m, int *ids, int len, int base, int *pos, int *labels, int *n,
             af_rng *rng);

/* ---- packing -------------------------------------------------------------------------------- */
/* Documents' tokens, [SEP] between documents, cut into sequences of max_len: [CLS] up to
 * max_len − 2 tokens [SEP]. Every sequence but the last is full, so batches need no padding (as
 * RoBERTa's FULL-SENTENCES packing). cls_id and sep_id are [CLS] and [SEP], or RoBERTa's <s> and
 * </s> (fairseq ends every document with </s> likewise). */
typedef struct {
    int max_len;
    int cls_id, sep_id;
    int *ids;        /* [nseq * max_len]: sequence i at ids + i·max_len */
    int *len;        /* [nseq] */
    int nseq, cap;
    int *cur;        /* the sequence being filled (body only) */
    int ncur;
    long long ntokens; /* body tokens packed (excluding [CLS]/[SEP] framing) */
} mlm_packer;

void mlm_packer_init(mlm_packer *p, int max_len, int cls_id, int sep_id);
void mlm_packer_free(mlm_packer *p);
/* Appends one document's tokens (no [CLS]/[SEP]). */
void mlm_pack_doc(mlm_packer *p, const int *ids, int n);
/* Closes the last, partial sequence (kept when it holds at least min_tokens). */
void mlm_pack_finish(mlm_packer *p, int min_tokens);
static inline const int *mlm_seq(const mlm_packer *p, int i) {
    return p->ids + (size_t)i * p->max_len;
}

#endif
