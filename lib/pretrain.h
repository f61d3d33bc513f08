/* pretrain.h: one MLM training or evaluation step of a whole encoder (BERT, RoBERTa, DistilBERT)
 * and its MLM head, and the table of its tensors under Hugging Face *ForMaskedLM names.
 *
 * A step takes packed sequences (mlm.h), masks a copy of them, runs the encoder and the head,
 * and (training) accumulates every gradient scaled for the mean over the masked positions of the
 * step's micro-batches. The optimizer (optim.h) then sees the tensors of pretrain_tensors. */
#ifndef AF_PRETRAIN_H
#define AF_PRETRAIN_H

#include "af.h"
#include "bert.h"
#include "mlm.h"

typedef struct {
    char name[96];   /* e.g. bert.encoder.layer.0.attention.self.query.weight */
    float *w, *g;    /* into the model's and the gradients' single allocations */
    int ndim;
    int64_t shape[2];
    size_t n;
    int decay;       /* HF Trainer: no weight decay on biases and LayerNorm weights */
} pretrain_tensor;

/* Fills t (when not NULL) with every trainable tensor, encoder then head, and returns how many.
 * query/key/value are views into the encoder's stacked qkv weights. */
int pretrain_tensors(const bert *m, const bert_grads *g, const mlm_head *h, pretrain_tensor *t);

typedef struct {
    bert *m;
    mlm_head *head;
    mlm_masker *masker;
    bert_grads g;
    mlm_acts ha;
    af_arena arena;
    bert_acts *acts;
    int maxB, maxS;
    int B, S;
    int *ids, *types, *mask;   /* [maxB * maxS] the batch as the encoder sees it (masked) */
    int *pos, *labels;         /* [maxB * maxS] masked rows (b·S + s) and their original ids */
    int n;                     /* masked positions in the batch */
    float *dhidden;            /* [maxB * maxS * H] */
} pretrain;

void pretrain_init(pretrain *p, bert *m, mlm_head *head, mlm_masker *masker, int maxB, int maxS);
void pretrain_free(pretrain *p);

/* Fills the batch from B sequences seqs[i] of lens[i] tokens (padded to the longest), masking
 * them with rng. Callers with their own masks (the parity test) set B, S, ids, types, mask, pos,
 * labels and n directly instead. */
void pretrain_fill(pretrain *p, const int *const *seqs, const int *lens, int B, af_rng *rng);

/* Keeps rows [lo, hi) of a filled batch (and their masked positions): one MPI rank's share,
 * masked exactly as the whole batch was (dist.h). */
void pretrain_keep_rows(pretrain *p, int lo, int hi);

/* Forward (and with train, backward with gradients scaled by `scale` per masked position, e.g.
 * 1/(masked positions of all micro-batches of the optimizer step)). Adds the summed
 * cross-entropy to *loss and the argmax hits to *correct. dropout_rng: the encoder's dropout. */
int pretrain_run(pretrain *p, int train, float scale, af_rng *dropout_rng, double *loss,
                 long *correct, af_err *e);

/* ---- corpus, baseline, output ------------------------------------------------------------ */
typedef struct lmtok lmtok;

/* Reads documents into the packer: raw text, one document per line (tokenized with t), or
 * tokenized JSONL (input_ids; [CLS]/[SEP] or <s>/</s> already there are dropped, the packer adds
 * its own), detected by a first non-blank line starting with '{'. gzip is read transparently.
 * *docs gets the number of non-empty documents. */
int pretrain_read_corpus(mlm_packer *p, const char *path, lmtok *t, int vocab_size, long *docs,
                         af_err *e);

/* sha256 of the packed sequences (ids and lengths): what training reads of a corpus, however
 * it was given (text or JSONL, one file or several). */
void pretrain_corpus_digest(const mlm_packer *p, char out[65]);

/* The unigram baseline on dev: predict every masked token from train's token frequencies alone
 * (add-one smoothed). acc: share of dev tokens equal to train's most frequent token; loss: mean
 * −log p(token). Special tokens (masker->special) count on neither side. */
void pretrain_unigram(const mlm_packer *train, const mlm_packer *dev, const mlm_masker *masker,
                      double *acc, double *loss);

/* 0 when pretrain_save may write dir: it does not exist, or is an empty directory, or one that
 * af-pretrain wrote (only its files, and a model.safetensors it created); else an error naming
 * what is in the way. pretrain_save checks it again before it replaces anything. */
int pretrain_check_output(const char *dir, af_err *e);

/* Writes a Hugging Face *ForMaskedLM directory (BertForMaskedLM, RobertaForMaskedLM, ...),
 * atomically (built in DIR.tmp.XXXXXX, then exchanged with DIR in one rename, after
 * pretrain_check_output): config.json, model.safetensors (F32, or F16 when f16; the encoder's
 * and the MLM head's tensors under the architecture's names, metadata meta[nmeta] added), the
 * tokenizer's files (lmtok_save: vocab.txt, or vocab.json and merges.txt, and
 * tokenizer_config.json); and, when state is not NULL, state written as
 * DIR/trainer.safetensors (a checkpoint's optimizer state, in the same atomic rename as the
 * weights). */
int pretrain_save(const char *dir, const bert *m, const mlm_head *h, const lmtok *tok, int f16,
                  const st_meta *meta, int nmeta, st_writer *state, af_err *e);
/* The names pretrain_save may write in a directory; NULL after the last. */
const char *pretrain_file(int i);

#endif
