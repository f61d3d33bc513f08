/* metrics.c: classification, regression and multi-label metrics (see metrics.h). Sums run in double
 * and counts in long; products of counts, which overflow 64 bits around 10^6 examples in the MCC
 * formula, are formed in double. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void metrics_init(metrics *m, int nclass) {
    memset(m, 0, sizeof *m);
    m->nclass = nclass >= 2 ? nclass : 0;
    m->kind = m->nclass ? METRICS_CLASSIFICATION : METRICS_REGRESSION;
    if (m->nclass) m->confusion = af_calloc((size_t)nclass * nclass, sizeof(long));
}

void metrics_init_multilabel(metrics *m, int nlabels) {
    memset(m, 0, sizeof *m);
    m->kind = METRICS_MULTILABEL;
    m->nclass = nlabels;
}

void metrics_free(metrics *m) {
    free(m->confusion);
    free(m->gold);
    free(m->pred);
    memset(m, 0, sizeof *m);
}

void metrics_reset(metrics *m) {
    m->tp = m->fp = m->fn = m->exact = 0;
    if (m->kind == METRICS_CLASSIFICATION)
        memset(m->confusion, 0, (size_t)m->nclass * m->nclass * sizeof(long));
    m->n = 0;
}

void metrics_add_class(metrics *m, int gold, int pred) {
    if (m->kind != METRICS_CLASSIFICATION || gold < 0 || gold >= m->nclass || pred < 0 ||
        pred >= m->nclass) {
        fprintf(stderr, "metrics_add_class: labels %d, %d outside [0, %d)\n", gold, pred,
                m->nclass);
        abort();
    }
    m->confusion[(size_t)gold * m->nclass + pred]++;
    m->n++;
}

void metrics_add_value(metrics *m, double gold, double pred) {
    if (m->kind != METRICS_REGRESSION) {
        fprintf(stderr, "metrics_add_value: accumulator is not for regression\n");
        abort();
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 256;
        m->gold = af_realloc(m->gold, (size_t)m->cap * sizeof(double));
        m->pred = af_realloc(m->pred, (size_t)m->cap * sizeof(double));
    }
    m->gold[m->n] = gold;
    m->pred[m->n] = pred;
    m->n++;
}

void metrics_add_set(metrics *m, const float *gold, const float *pred) {
    if (m->kind != METRICS_MULTILABEL) {
        fprintf(stderr, "metrics_add_set: accumulator is not for multi-label\n");
        abort();
    }
    int same = 1;
    for (int j = 0; j < m->nclass; j++) {
        int g = gold[j] != 0, p = pred[j] != 0;
        m->tp += g && p, m->fp += !g && p, m->fn += g && !p;
        same &= g == p;
    }
    m->exact += same;
    m->n++;
}

/* ---- classification ---- */

static long conf_total(const long *conf, int k) {
    long n = 0;
    for (int i = 0; i < k * k; i++) n += conf[i];
    return n;
}

double metrics_accuracy(const long *conf, int k) {
    long n = conf_total(conf, k), right = 0;
    for (int i = 0; i < k; i++) right += conf[(size_t)i * k + i];
    return n ? (double)right / n : NAN;
}

/* sklearn f1_score(average="macro"): labels are those in gold ∪ predicted; for each,
 * F1 = 2tp/(2tp+fp+fn), which equals 2PR/(P+R) with sklearn's zero_division=0 conventions. */
double metrics_f1_macro(const long *conf, int k) {
    double sum = 0;
    int labels = 0;
    for (int c = 0; c < k; c++) {
        long tp = conf[(size_t)c * k + c], gold = 0, pred = 0;
        for (int j = 0; j < k; j++) {
            gold += conf[(size_t)c * k + j];
            pred += conf[(size_t)j * k + c];
        }
        if (gold == 0 && pred == 0) continue;
        long fn = gold - tp, fp = pred - tp;
        sum += 2.0 * tp / (2.0 * tp + fp + fn);
        labels++;
    }
    return labels ? sum / labels : NAN;
}

/* sklearn matthews_corrcoef: the multiclass R_K statistic (Gorodkin 2004). */
double metrics_mcc(const long *conf, int k) {
    double n = 0, correct = 0, tp = 0, tt = 0, pp = 0;
    for (int c = 0; c < k; c++) {
        double t = 0, p = 0;
        for (int j = 0; j < k; j++) {
            t += conf[(size_t)c * k + j];
            p += conf[(size_t)j * k + c];
        }
        correct += conf[(size_t)c * k + c];
        n += t;
        tp += t * p;
        tt += t * t;
        pp += p * p;
    }
    if (n == 0) return NAN;
    double cov_tp = correct * n - tp, cov_pp = n * n - pp, cov_tt = n * n - tt;
    if (cov_pp * cov_tt == 0) return 0.0;
    return cov_tp / sqrt(cov_tt * cov_pp);
}

/* ---- regression ---- */

static int any_nan(const double *x, long n) {
    for (long i = 0; i < n; i++)
        if (x[i] != x[i]) return 1;
    return 0;
}

/* scipy.stats.pearsonr: centred dot product over the product of norms, clipped to [-1, 1]. */
double metrics_pearson(const double *x, const double *y, long n) {
    if (n < 2 || any_nan(x, n) || any_nan(y, n)) return NAN;
    double mx = 0, my = 0;
    for (long i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (long i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx == 0 || syy == 0) return NAN;
    double r = sxy / (sqrt(sxx) * sqrt(syy));
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

static const double *rank_keys;
static int rank_cmp(const void *a, const void *b) {
    long i = *(const long *)a, j = *(const long *)b;
    double x = rank_keys[i], y = rank_keys[j];
    if (x < y) return -1;
    if (x > y) return 1;
    return (i > j) - (i < j); /* total order, so any qsort gives the same permutation */
}

void metrics_rank(double *rank, const double *x, long n) {
    long *ord = af_malloc((size_t)(n ? n : 1) * sizeof(long));
    for (long i = 0; i < n; i++) ord[i] = i;
    rank_keys = x;
    qsort(ord, (size_t)n, sizeof *ord, rank_cmp);
    for (long i = 0; i < n;) {
        long j = i;
        while (j + 1 < n && x[ord[j + 1]] == x[ord[i]]) j++;
        double r = (i + j) / 2.0 + 1; /* mean of the 1-based positions i+1 .. j+1 */
        for (long t = i; t <= j; t++) rank[ord[t]] = r;
        i = j + 1;
    }
    free(ord);
}

double metrics_spearman(const double *x, const double *y, long n) {
    if (n < 2 || any_nan(x, n) || any_nan(y, n)) return NAN;
    double *rx = af_malloc((size_t)n * sizeof(double)), *ry = af_malloc((size_t)n * sizeof(double));
    metrics_rank(rx, x, n);
    metrics_rank(ry, y, n);
    double r = metrics_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

void metrics_compute(const metrics *m, metrics_result *r) {
    *r = (metrics_result){m->n, m->kind, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    if (m->n == 0) return;
    if (m->kind == METRICS_MULTILABEL) {
        double d = 2.0 * m->tp + m->fp + m->fn;
        r->micro_f1 = d > 0 ? 2.0 * m->tp / d : 0; /* sklearn's zero_division = 0 */
        r->exact_match = (double)m->exact / m->n;
        return;
    }
    if (m->kind == METRICS_CLASSIFICATION) {
        r->accuracy = metrics_accuracy(m->confusion, m->nclass);
        r->f1 = metrics_f1_macro(m->confusion, m->nclass);
        r->mcc = metrics_mcc(m->confusion, m->nclass);
        return;
    }
    r->pearson = metrics_pearson(m->gold, m->pred, m->n);
    r->spearman = metrics_spearman(m->gold, m->pred, m->n);
    double s = 0;
    for (long i = 0; i < m->n; i++) s += (m->pred[i] - m->gold[i]) * (m->pred[i] - m->gold[i]);
    r->mse = s / m->n;
}

/* ---- lookup by name ---- */

static const struct {
    const char *name;
    int kind;
    size_t off;
} NAMES[] = {
    {"accuracy", METRICS_CLASSIFICATION, offsetof(metrics_result, accuracy)},
    {"acc", METRICS_CLASSIFICATION, offsetof(metrics_result, accuracy)},
    {"f1", METRICS_CLASSIFICATION, offsetof(metrics_result, f1)},
    {"mcc", METRICS_CLASSIFICATION, offsetof(metrics_result, mcc)},
    {"pearson", METRICS_REGRESSION, offsetof(metrics_result, pearson)},
    {"spearman", METRICS_REGRESSION, offsetof(metrics_result, spearman)},
    {"mse", METRICS_REGRESSION, offsetof(metrics_result, mse)},
    {"micro_f1", METRICS_MULTILABEL, offsetof(metrics_result, micro_f1)},
    {"exact_match", METRICS_MULTILABEL, offsetof(metrics_result, exact_match)},
};

static const char *const KIND_NAME[] = {"classification", "regression", "multi-label"};
static const char *const KIND_METRICS[] = {"accuracy, f1, mcc", "pearson, spearman, mse",
                                           "micro_f1, exact_match"};

static int lookup(const char *name, int kind, af_err *e) {
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++) {
        if (strcmp(NAMES[i].name, name) != 0) continue;
        if (NAMES[i].kind != kind)
            return af_errf(e, "metric '%s' is for %s; a %s task has %s", name,
                           KIND_NAME[NAMES[i].kind], KIND_NAME[kind], KIND_METRICS[kind]);
        return (int)i;
    }
    return af_errf(e,
                   "unknown metric '%s' (expected accuracy, f1, mcc, pearson, spearman, mse, "
                   "micro_f1 or exact_match)",
                   name);
}

int metrics_check(const char *name, int kind, af_err *e) {
    return lookup(name, kind, e) < 0 ? -1 : 0;
}

const char *metrics_default(int kind) {
    return kind == METRICS_REGRESSION   ? "pearson"
           : kind == METRICS_MULTILABEL ? "micro_f1"
                                        : "accuracy";
}

int metrics_get(const metrics_result *r, const char *name, double *value, af_err *e) {
    int i = lookup(name, r->kind, e);
    if (i < 0) return -1;
    memcpy(value, (const char *)r + NAMES[i].off, sizeof *value);
    return 0;
}

int metrics_higher_is_better(const char *name) {
    return strcmp(name, "mse") != 0;
}
