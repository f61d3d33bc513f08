/* infer.h: running a trained model over tokenized JSONL as a stream (af-infer).
 *
 * A window of lines is read, run through the model in batches of similar lengths and written
 * out, one JSON line per input line in input order, before the next window is read: memory is
 * bounded by the window, and a pipeline sees each line's result as soon as its line can run. An
 * output line (af-files(5), af-files(5)) carries the input's own keys verbatim except the token
 * arrays, with its "label" renamed "gold", then the prediction:
 *     {"id":"x17", "gold":"positive", "label":"positive", "label_id":1, "probs":[0.03,0.97]}
 *     {"id":"x18", "score":3.25}                                        (regression)
 *     {"id":"x19", "labels":["toxic"], "probs":[0.91,0.08,0.32]}        (multi-label)
 * and, when asked, "fusion_weights" (see infer_fw).
 *
 * A bad line (not JSON, a token outside the vocabulary, an unknown task, with metrics a label
 * the head does not know) stops the stream: the lines before it are written and flushed, then
 * the error names the input and the line. */
#ifndef AF_INFER_H
#define AF_INFER_H

#include <stdio.h>

#include "metrics.h"
#include "model.h"

/* Selects and loads the model af-infer runs, on m (model_init'ed on its base):
 * paths[n] are adapter files; with a fusion file, the adapters it fuses are taken from them by
 * name in the fusion's order (each file checked against the sha256 the fusion recorded); without
 * one, exactly one adapter must be chosen and its own heads serve. select ("a,b" or NULL) picks
 * adapters by name among the files; with a fusion it must name exactly the fused adapters. The
 * model is finalized for inference (nothing trains). */
/* fins[nfin]: fusion files under a hierarchical fusion (af-infer --fusion-input), every one it
 * needs and no other (model_load_fusion_inputs). */
int infer_load(af_model *m, const char **paths, int n, const char *fusion, const char **fins,
               int nfin, const char *select, af_err *e);

typedef enum {
    INFER_FW_NONE,
    INFER_FW_MEAN,   /* per layer, the mean over the line's real tokens (attention_mask 1) */
    INFER_FW_TOKENS, /* per layer, every real token's weights */
} infer_fw;

typedef struct {
    int batch_size; /* lines per forward */
    int max_len;    /* tokens kept per line; <= 0 or above the base's positions: the base's */
    int head;       /* >= 0: every line uses this head; -1: the line's "task", or the only head */
    int fusion_weights; /* infer_fw */
    int metrics;        /* score the lines that carry a gold "label" */
} infer_opts;

/* Lines read ahead and run together, in batches of similar lengths (so little padding is
 * computed), before they are written in input order: this many batches, or fewer when the input
 * pauses (a pipeline still gets each answer as soon as its line can run). */
#define INFER_WINDOW_BATCHES 8

/* What a run saw. Zero it, then infer_stream fills it; free with infer_stats_free. */
typedef struct {
    long lines;     /* lines written */
    long truncated; /* lines longer than max_len, cut */
    int nheads;
    metrics *mt;      /* [nheads] gold vs predicted, with opts.metrics */
    double *loss_sum; /* [nheads] cross-entropy (or squared error) summed over scored lines */
} infer_stats;

/* Reads input ("-": stdin; gzip is detected), writes to out. Returns 0, or -1 with e set; what
 * was complete before the error has been written and flushed. */
int infer_stream(af_model *m, const infer_opts *o, const char *input, FILE *out, infer_stats *st,
                 af_err *e);
void infer_stats_free(infer_stats *st);

/* The metrics of a run: a human summary per head (af-fuse's dev line format, then a confusion
 * matrix with `confusion`), and the --metrics-json document:
 *   {"lines": N, "tasks": {"NAME": {"examples": n, "loss": x, "accuracy": x, "f1": x, "mcc": x,
 *    "labels": [..], "confusion": [[..]..]}}}   (regression: pearson, spearman, mse;
 *    multi-label: micro_f1, exact_match, labels) */
void infer_metrics_print(FILE *f, const char *prefix, const af_model *m, const infer_stats *st,
                         int confusion);
cJSON *infer_metrics_json(const af_model *m, const infer_stats *st);

#endif
