/* train.h: the training loop af-train-adapter and af-fuse share, and evaluation.
 *
 * Hugging Face Trainer semantics (lib/README.md, "The model"): AdamW, linear schedule with optional
 * warmup, global gradient-norm clipping, mean loss over the batch, evaluation every epoch (or every
 * N steps), early stopping on a dev metric; the best evaluation's weights are the ones written.
 * With dropout 0 and one batch per epoch a run is deterministic and equals the same steps in
 * PyTorch. */
#ifndef AF_TRAIN_H
#define AF_TRAIN_H

#include "jsonl.h"
#include "metrics.h"
#include "model.h"

/* Examples resolved against the model's heads: which head each row uses, and its gold value. */
typedef struct {
    const char *name;  /* input name, for messages */
    jl_example *ex;
    int n;
    int *head_of;      /* [n] */
    float *gold;       /* [n, ldg]: label id or regression target (column 0), or a multi-label
                          line's 0/1 targets; NULL when unlabelled */
    int ldg;           /* gold's row width: 1, or the most labels of a multi-label head */
    int *len;          /* [n] lengths after truncation to max_len */
    int truncated;     /* examples longer than max_len */
} train_data;

/* A line's gold for head hd into g (1 value, or hd->L targets for a multi-label head), or -1
 * with a message naming input `name` and the line when the label does not fit the head. */
int train_gold(float *g, const jl_example *x, const model_head *hd, const char *name, af_err *e);

/* Resolves every example's task and label. need_labels: a missing label is an error. */
int train_data_build(train_data *d, const af_model *m, jl_set *s, const char *name, int max_len,
                     int need_labels, af_err *e);
void train_data_free(train_data *d);

/* Head discovery, before training: one head per task seen in the data (examples without "task"
 * use default_task), labels from the data (sorted; numerically when all are integers) unless
 * given. labels_opt: "a,b,c" for the default task; task_opts: "NAME:a,b,c", "NAME:regression",
 * "NAME:multilabel" or "NAME:multilabel:a,b,c". kind (head_kind) is every task's unless its
 * option says otherwise; with HEAD_CLASSIFICATION, a task whose labels in the data are lists is
 * multi-label, and one with a non-integer numeric label (and no labels given) a regression. */
int train_add_heads(af_model *m, const jl_set *train, const char *default_task,
                    const char *labels_opt, char **task_opts, int ntask_opts, int kind,
                    uint64_t seed, af_err *e);

/* The default pass size (train_opts.micro_batch): whole batches while their activations fit in
 * TRAIN_PASS_BUDGET bytes, else the fewest equal passes that do (model_pass_rows). */
#define TRAIN_PASS_AUTO -1
#define TRAIN_PASS_BUDGET ((size_t)512 << 20)

typedef struct {
    int epochs;
    long max_steps;        /* > 0: stop after this many optimizer steps */
    int batch_size, eval_batch_size, max_len;
    int micro_batch;       /* > 0: at most this many examples per forward/backward pass; 0: whole
                              batches; TRAIN_PASS_AUTO: passes within TRAIN_PASS_BUDGET */
    double lr, adapter_lr; /* adapter_lr: adapters' group when they train next to a fusion */
    double weight_decay, warmup_ratio, max_grad_norm, beta1, beta2, eps;
    double dropout;        /* < 0: the base's */
    uint64_t seed;
    long eval_every;       /* > 0: evaluate every N steps instead of every epoch */
    const char *metric;    /* early stopping metric; NULL: accuracy (classification) or pearson */
    int patience;          /* evaluations without improvement before stopping; 0: never stop */
    const char *out_path, *ckpt_path, *resume_path, *log_path;
    const char *format;    /* MODEL_FORMAT_ADAPTER or MODEL_FORMAT_FUSION */
    int save_groups;       /* bit mask of param_group written to the output */
    const char *args_json; /* the command line, recorded in the output's training metadata */
    /* AdapterDrop (model_frozen_layers K > 0): layer K's input per example, kept in memory up to
     * cache_memory bytes, else in a file under cache_dir (NULL: $TMPDIR or /tmp); no_cache:
     * the lower layers run every epoch (the same results, for comparison) */
    uint64_t cache_memory;
    const char *cache_dir;
    int no_cache;
    int quiet;
} train_opts;

#define TRAIN_CACHE_MEMORY ((uint64_t)2048 << 20)

void train_opts_defaults(train_opts *o);

/* Trains m (whose train_* flags and heads are set; model_finalize done) and writes o->out_path.
 * Returns 0, -1 on error, or a signal's exit status (130, 143) after writing a checkpoint. */
int train_run(af_model *m, const train_data *tr, const train_data *dev, const train_opts *o,
              af_err *e);

/* Evaluates d: metrics per head (res[nheads]) and the mean loss. probs (optional, [n, ldo])
 * receives each row's output. */
int train_evaluate(af_model *m, const train_data *d, int batch_size, metrics_result *res,
                   double *loss, float *probs, int ldo);

/* The early-stopping score of an evaluation: the metric averaged over heads. */
double train_score(const af_model *m, const metrics_result *res, const char *metric);

#endif
