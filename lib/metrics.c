/* metrics.c: classification and regression metrics (see metrics.h). Sums run in double and
 * counts in long; products of counts, which overflow 64 bits around 10^6 examples in the MCC
 * formula, are formed in double. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void metrics_init(metrics *m, int nclass) {
    memset(m, 0, sizeof *m);
    m->nclass = nclass >= 2 ? nclass : 0;
    if (m->nclass) m->confusion = af_calloc((size_t)nclass * nclass, sizeof(long));
}

void metrics_free(metrics *m) {
    free(m->confusion);
    free(m->gold);
    free(m->pred);
    memset(m, 0, sizeof *m);
}

void metrics_reset(metrics *m) {
    if (m->nclass) memset(m->confusion, 0, (size_t)m->nclass * m->nclass * sizeof(long));
    m->n = 0;
}

void metrics_add_class(metrics *m, int gold, int pred) {
    if (!m->nclass || gold < 0 || gold >= m->nclass || pred < 0 || pred >= m->nclass) {
        fprintf(stderr, "metrics_add_class: labels %d, %d outside [0, %d)\n", gold, pred,
                m->nclass);
        abort();
    }
    m->confusion[(size_t)gold * m->nclass + pred]++;
    m->n++;
}

void metrics_add_value(metrics *m, double gold, double pred) {
    if (m->nclass) {
        fprintf(stderr, "metrics_add_value: accumulator is for classification\n");
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
    *r = (metrics_result){m->n, !m->nclass, NAN, NAN, NAN, NAN, NAN, NAN};
    if (m->n == 0) return;
    if (m->nclass) {
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
    int regression;
    size_t off;
} NAMES[] = {
    {"accuracy", 0, offsetof(metrics_result, accuracy)},
    {"acc", 0, offsetof(metrics_result, accuracy)},
    {"f1", 0, offsetof(metrics_result, f1)},
    {"mcc", 0, offsetof(metrics_result, mcc)},
    {"pearson", 1, offsetof(metrics_result, pearson)},
    {"spearman", 1, offsetof(metrics_result, spearman)},
    {"mse", 1, offsetof(metrics_result, mse)},
};

static int lookup(const char *name, int regression, af_err *e) {
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++) {
        if (strcmp(NAMES[i].name, name) != 0) continue;
        if (NAMES[i].regression != regression)
            return af_errf(e, "metric '%s' is for %s; a %s task has %s", name,
                           regression ? "classification" : "regression",
                           regression ? "regression" : "classification",
                           regression ? "pearson, spearman, mse" : "accuracy, f1, mcc");
        return (int)i;
    }
    return af_errf(e, "unknown metric '%s' (expected accuracy, f1, mcc, pearson, spearman or mse)",
                   name);
}

int metrics_check(const char *name, int regression, af_err *e) {
    return lookup(name, regression, e) < 0 ? -1 : 0;
}

int metrics_get(const metrics_result *r, const char *name, double *value, af_err *e) {
    int i = lookup(name, r->regression, e);
    if (i < 0) return -1;
    memcpy(value, (const char *)r + NAMES[i].off, sizeof *value);
    return 0;
}

int metrics_higher_is_better(const char *name) {
    return strcmp(name, "mse") != 0;
}
