/* metrics.h: evaluation metrics, with scikit-learn's and scipy's semantics so numbers compare
 * with published GLUE results: accuracy, macro-F1, Matthews correlation, confusion matrix for
 * classification; Pearson, Spearman and MSE for regression; micro-F1 and exact match (subset
 * accuracy) for multi-label classification.
 *
 * An accumulator is fed one (gold, predicted) pair per example, then summarised:
 *     metrics m;
 *     metrics_init(&m, nlabels);          // nlabels <= 1: regression
 *     (or metrics_init_multilabel(&m, nlabels))
 *     for each example: metrics_add_class(&m, gold, pred), metrics_add_value(&m, y, yhat)
 *                       or metrics_add_set(&m, gold01, pred01);
 *     metrics_result r;
 *     metrics_compute(&m, &r);
 */
#ifndef AF_METRICS_H
#define AF_METRICS_H

#include "af.h"

/* The kinds, in the order of head_kind (head.h). */
enum { METRICS_CLASSIFICATION, METRICS_REGRESSION, METRICS_MULTILABEL };

typedef struct {
    int kind;        /* METRICS_* */
    int nclass;      /* classification: >= 2 classes; multi-label: labels per example */
    long n;          /* pairs added */
    long *confusion; /* [nclass, nclass]: row = gold, column = predicted */
    double *gold;    /* [n] regression targets */
    double *pred;    /* [n] regression predictions */
    long cap;
    long tp, fp, fn; /* multi-label: label decisions summed over examples and labels */
    long exact;      /* multi-label: examples whose predicted set is the gold set */
} metrics;

typedef struct {
    long n;
    int kind; /* METRICS_* */
    /* classification (NAN for the other kinds) */
    double accuracy;
    double f1;  /* macro-F1 over the labels present in gold ∪ predicted (sklearn) */
    double mcc; /* multiclass Matthews correlation (sklearn); 0 when undefined */
    /* regression (NAN for classification) */
    double pearson;  /* NAN when undefined (fewer than 2 pairs or a constant side), as scipy */
    double spearman; /* Pearson of average ranks */
    double mse;
    /* multi-label (NAN for the other kinds) */
    double micro_f1;    /* 2·TP / (2·TP + FP + FN) over all labels (sklearn average="micro"; 0
                           when there is nothing to find and nothing found) */
    double exact_match; /* share of examples whose predicted set equals the gold set (sklearn
                           accuracy_score on label indicators) */
} metrics_result;

/* nclass <= 1 means regression. */
void metrics_init(metrics *m, int nclass);
/* Multi-label: every example says yes or no to each of nlabels labels. */
void metrics_init_multilabel(metrics *m, int nlabels);
void metrics_free(metrics *m);
void metrics_reset(metrics *m); /* forget the pairs, keep the kind */

/* Classification pair; labels outside [0, nclass) are a bug in the caller (aborts). */
void metrics_add_class(metrics *m, int gold, int pred);
void metrics_add_value(metrics *m, double gold, double pred);
/* Multi-label example: gold[j], pred[j] nonzero when label j is in the set. */
void metrics_add_set(metrics *m, const float *gold, const float *pred);

/* All metrics of the accumulator's kind; the others are NAN. With no pairs, all NAN. */
void metrics_compute(const metrics *m, metrics_result *r);

/* The same computations on plain arrays. conf is [k, k], row = gold. */
double metrics_accuracy(const long *conf, int k);
double metrics_f1_macro(const long *conf, int k);
double metrics_mcc(const long *conf, int k);
double metrics_pearson(const double *x, const double *y, long n);
double metrics_spearman(const double *x, const double *y, long n);
/* Average ranks (1-based; ties share the mean of their positions), as scipy.stats.rankdata. */
void metrics_rank(double *rank, const double *x, long n);

/* Looks a metric up by name for --metric: "accuracy" (or "acc"), "f1", "mcc", "pearson",
 * "spearman", "mse", "micro_f1", "exact_match". Fails, listing the valid names, for an unknown
 * name or one of another kind (e.g. "mcc" on a regression task). */
int metrics_get(const metrics_result *r, const char *name, double *value, af_err *e);
/* The same check without a result, to refuse a bad --metric before training starts. */
int metrics_check(const char *name, int kind, af_err *e);
/* The metric early stopping uses by default for a kind: accuracy, pearson, micro_f1. */
const char *metrics_default(int kind);
/* 1 when larger is better (all but "mse"), for early stopping. */
int metrics_higher_is_better(const char *name);

#endif
