/* mlmtrain.h: a masked-language-model pretraining run (af-pretrain) on the shared loop (loop.h).
 *
 * From a model (new or loaded), its MLM head, a masker and packed corpora to the output
 * directory: the optimizer (AdamW over every tensor, linear schedule with warmup), resuming from
 * a checkpoint directory (refused when its run record differs: runrec.h), the steps (each of
 * --accumulate micro-batches, masked and dropped out by seeds of the step, so a resumed run is
 * exact), evaluation on dev (MLM loss and accuracy against the unigram baseline, one JSON line
 * per evaluation in the log), checkpoints every --save-every steps and on a signal, and the
 * training record in the model's metadata. Under MPI (dist.h) each rank runs its share of every
 * micro-batch and rank 0 writes. */
#ifndef AF_MLMTRAIN_H
#define AF_MLMTRAIN_H

#include "bert.h"
#include "mlm.h"

typedef struct {
    const char *base; /* the model continued from (NULL: a new model of the shape below) */
    const char *vocab, *merges, *out, *dev, *ckpt, *log; /* merges: BPE (lmtok.h) */
    int layers, hidden, heads, ffn, max_pos, act;
    double dropout; /* a new model's */
    int max_len, batch, accum, epochs;
    long steps; /* > 0: optimizer steps; else epochs over the corpus */
    long save_every, eval_every;
    double lr, warmup_ratio, wd, clip, mask_prob;
    int resume, whole_word, quiet, f16, lower;
    uint64_t seed;
} mlmtrain_opts;

/* What af-pretrain learned of its corpora before training, for the record. */
typedef struct {
    long docs;
    double unigram_acc, unigram_loss; /* NAN without dev */
} mlmtrain_corpus;

typedef struct lmtok lmtok;

/* Trains m and h and writes o->out (rank 0) with tok's files. Returns 0 when done, the signal's
 * exit status (130, 143) once a checkpoint is written, or -1 with e. *step: the steps done at
 * the end. */
int mlmtrain_run(const mlmtrain_opts *o, bert *m, mlm_head *h, mlm_masker *mk, const lmtok *tok,
                 const mlm_packer *train, const mlm_packer *dev, const mlmtrain_corpus *corpus,
                 long *step, af_err *e);

#endif
