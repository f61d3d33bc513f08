/* metrics.c: hand-checked cases, then the values of scripts/gen-metrics-expected.py. */
#include "metrics.h"
#include "tap.h"

#include <string.h>

static int near(double a, double b, double tol) {
    if (isnan(b)) return isnan(a);
    return fabs(a - b) <= tol;
}

static void feed(metrics *m, const int *g, const int *p, int n) {
    for (int i = 0; i < n; i++) metrics_add_class(m, g[i], p[i]);
}

static void test_hand(void) {
    metrics m;
    metrics_result r;
    metrics_init(&m, 2);
    /* tp 1, fn 1, tn 2, fp 0: F1(1) = 2/3, F1(0) = 4/5, MCC = (1·2 − 0·1)/√(1·2·2·3) */
    feed(&m, (int[]){1, 1, 0, 0}, (int[]){1, 0, 0, 0}, 4);
    metrics_compute(&m, &r);
    ok(r.n == 4 && near(r.accuracy, 0.75, 1e-15), "binary: accuracy 3/4 (%g)", r.accuracy);
    ok(near(r.f1, (2.0 / 3 + 0.8) / 2, 1e-15), "binary: macro-F1 (2/3 + 4/5)/2 (%g)", r.f1);
    ok(near(r.mcc, 2 / sqrt(12), 1e-15), "binary: MCC 2/sqrt(12) (%g)", r.mcc);
    ok(m.confusion[1 * 2 + 0] == 1 && m.confusion[0] == 2 && m.confusion[3] == 1,
       "confusion matrix rows are gold, columns predicted");
    ok(isnan(r.pearson) && isnan(r.mse), "regression fields are NaN for classification");

    metrics_reset(&m);
    feed(&m, (int[]){0, 1, 1, 0}, (int[]){1, 0, 0, 1}, 4);
    metrics_compute(&m, &r);
    ok(r.accuracy == 0 && r.f1 == 0 && near(r.mcc, -1, 1e-15), "all wrong: 0, 0, MCC -1");
    metrics_free(&m);

    /* 4 declared labels, only 0 and 1 occur: the absent ones do not dilute the macro average */
    metrics_init(&m, 4);
    feed(&m, (int[]){0, 1, 0, 1}, (int[]){0, 1, 0, 1}, 4);
    metrics_compute(&m, &r);
    ok(r.accuracy == 1 && r.f1 == 1 && r.mcc == 1, "perfect with unused labels: 1, 1, 1 (f1 %g)",
       r.f1);
    /* a label only predicted counts with F1 0: labels {0,1,3}, F1 = (1 + 4/5 + 0)/3 */
    metrics_add_class(&m, 1, 3);
    metrics_compute(&m, &r);
    ok(near(r.f1, (1 + 0.8 + 0) / 3, 1e-15), "predicted-only label counts as 0 (%g)", r.f1);
    metrics_free(&m);

    metrics_init(&m, 3);
    metrics_compute(&m, &r);
    ok(r.n == 0 && isnan(r.accuracy) && isnan(r.f1) && isnan(r.mcc), "no pairs: all NaN");
    feed(&m, (int[]){0, 1, 2}, (int[]){1, 1, 1}, 3);
    metrics_compute(&m, &r);
    ok(r.mcc == 0, "constant prediction: MCC 0 (undefined)");
    metrics_free(&m);

    double rk[6];
    metrics_rank(rk, (double[]){30, 10, 20, 20, 5, 20}, 6);
    ok(rk[0] == 6 && rk[1] == 2 && rk[2] == 4 && rk[3] == 4 && rk[4] == 1 && rk[5] == 4,
       "average ranks: 30 10 20 20 5 20 -> 6 2 4 4 1 4");
    double x[] = {1, 2, 3, 4, 5};
    ok(near(metrics_pearson(x, (double[]){2, 4, 6, 8, 10}, 5), 1, 1e-15), "pearson 1");
    ok(near(metrics_pearson(x, (double[]){5, 4, 3, 2, 1}, 5), -1, 1e-15), "pearson -1");
    ok(isnan(metrics_pearson(x, (double[]){3, 3, 3, 3, 3}, 5)), "pearson of a constant is NaN");
    ok(isnan(metrics_pearson(x, (double[]){1, NAN, 3, 4, 5}, 5)), "a NaN prediction gives NaN");
    /* ranks 1..5 vs 1,2,3.5,5,3.5; centred: (−2,−1,0,1,2)·(−2,−1,.5,2,.5) = 8, norms² 10, 9.5 */
    ok(near(metrics_spearman(x, (double[]){5, 6, 7, 8, 7}, 5), 8 / sqrt(10 * 9.5), 1e-15),
       "spearman with a tie");
    ok(near(metrics_spearman(x, (double[]){1, 10, 100, 1000, 1e4}, 5), 1, 1e-15),
       "spearman of a monotone map is 1");

    metrics_init(&m, 1);
    metrics_add_value(&m, 1, 2);
    metrics_add_value(&m, 2, 2);
    metrics_add_value(&m, 3, 5);
    metrics_compute(&m, &r);
    ok(r.kind == METRICS_REGRESSION && near(r.mse, 5.0 / 3, 1e-15) && isnan(r.accuracy),
       "regression: MSE 5/3");
    metrics_free(&m);

    /* multi-label by hand: rows {a}, {a,b}, {} against {a}, {b}, {c}: TP 2, FP 1, FN 1 */
    metrics_init_multilabel(&m, 3);
    metrics_add_set(&m, (float[]){1, 0, 0}, (float[]){1, 0, 0});
    metrics_add_set(&m, (float[]){1, 1, 0}, (float[]){0, 1, 0});
    metrics_add_set(&m, (float[]){0, 0, 0}, (float[]){0, 0, 1});
    metrics_compute(&m, &r);
    ok(r.kind == METRICS_MULTILABEL && near(r.micro_f1, 4.0 / 6, 1e-15) &&
           near(r.exact_match, 1.0 / 3, 1e-15) && isnan(r.accuracy),
       "multi-label: micro-F1 2·2/(2·2 + 1 + 1), exact match 1/3");
    metrics_free(&m);
}

static void test_names(void) {
    metrics_result r = {.kind = METRICS_CLASSIFICATION, .accuracy = 0.5, .f1 = 0.25, .mcc = 0.125};
    double v = 0;
    af_err e;
    ok(metrics_get(&r, "f1", &v, &e) == 0 && v == 0.25, "metrics_get f1");
    ok(metrics_get(&r, "acc", &v, &e) == 0 && v == 0.5, "metrics_get acc");
    ok(metrics_get(&r, "mcc", &v, &e) == 0 && v == 0.125, "metrics_get mcc");
    ok(metrics_get(&r, "pearson", &v, &e) == -1 && strstr(e.msg, "accuracy, f1, mcc"),
       "pearson on classification refused: %s", e.msg);
    ok(metrics_check("f2", 1, &e) == -1 && strstr(e.msg, "unknown metric 'f2'"), "unknown: %s",
       e.msg);
    ok(metrics_check("spearman", 1, &e) == 0, "spearman valid for regression");
    ok(metrics_higher_is_better("mcc") && !metrics_higher_is_better("mse"), "direction");
    ok(metrics_check("micro_f1", METRICS_MULTILABEL, &e) == 0 &&
           metrics_check("exact_match", METRICS_MULTILABEL, &e) == 0,
       "micro_f1 and exact_match valid for multi-label");
    ok(metrics_check("accuracy", METRICS_MULTILABEL, &e) == -1 &&
           strstr(e.msg, "a multi-label task has micro_f1, exact_match"),
       "accuracy on a multi-label task refused: %s", e.msg);
    ok(!strcmp(metrics_default(METRICS_MULTILABEL), "micro_f1") &&
           !strcmp(metrics_default(METRICS_REGRESSION), "pearson") &&
           !strcmp(metrics_default(METRICS_CLASSIFICATION), "accuracy"),
       "default metrics per kind");
}

/* Reads "word v v v ..." into a[], returning the count. */
static int read_row(FILE *f, const char *word, double *a, int max) {
    char w[16];
    if (fscanf(f, "%15s", w) != 1 || strcmp(w, word) != 0) return -1;
    int n = 0;
    char tok[64];
    while (n < max && fscanf(f, "%63s", tok) == 1) {
        a[n++] = strcmp(tok, "nan") == 0 ? NAN : strtod(tok, NULL);
        int c = fgetc(f);
        if (c == '\n' || c == EOF) break;
        ungetc(c, f);
    }
    return n;
}

static void test_fixture(void) {
    char path[4096];
    const char *top = getenv("AF_TOP");
    snprintf(path, sizeof path, "%s/tests/fixtures/metrics/cases.txt", top ? top : ".");
    FILE *f = fopen(path, "r");
    if (!ok(f != NULL, "open %s", path)) return;
    enum { MAX = 2000 };
    static double g[MAX], p[MAX], want[3];
    char kind[8];
    int ncases = 0;
    while (fscanf(f, "%7s", kind) == 1) {
        int k = 0, n = 0;
        int ml = strcmp(kind, "ml") == 0, per = 1;
        if (strcmp(kind, "cls") == 0 || ml ? fscanf(f, "%d %d", &k, &n) != 2
                                           : fscanf(f, "%d", &n) != 1)
            break;
        if (ml) per = k; /* n rows of k decisions */
        if (read_row(f, "gold", g, MAX) != n * per || read_row(f, "pred", p, MAX) != n * per ||
            read_row(f, "want", want, 3) != (ml ? 2 : 3)) {
            ok(0, "case %d malformed", ncases + 1);
            break;
        }
        ncases++;
        metrics m;
        metrics_result r;
        if (ml) {
            float gf[64], pf[64];
            metrics_init_multilabel(&m, k);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < k; j++)
                    gf[j] = (float)g[i * k + j], pf[j] = (float)p[i * k + j];
                metrics_add_set(&m, gf, pf);
            }
            metrics_compute(&m, &r);
            ok(near(r.micro_f1, want[0], 1e-12) && near(r.exact_match, want[1], 1e-12) &&
                   isnan(r.accuracy) && isnan(r.pearson),
               "case %d (multi-label, %d labels, %d): micro_f1 %.6f exact %.6f vs %.6f %.6f",
               ncases, k, n, r.micro_f1, r.exact_match, want[0], want[1]);
            metrics_free(&m);
            continue;
        }
        metrics_init(&m, strcmp(kind, "cls") == 0 ? k : 0);
        for (int i = 0; i < n; i++) {
            if (m.nclass)
                metrics_add_class(&m, (int)g[i], (int)p[i]);
            else
                metrics_add_value(&m, g[i], p[i]);
        }
        metrics_compute(&m, &r);
        if (m.nclass)
            ok(near(r.accuracy, want[0], 1e-12) && near(r.f1, want[1], 1e-12) &&
                   near(r.mcc, want[2], 1e-12),
               "case %d (%d classes, %d): acc %.6f f1 %.6f mcc %.6f vs %.6f %.6f %.6f", ncases, k,
               n, r.accuracy, r.f1, r.mcc, want[0], want[1], want[2]);
        else
            ok(near(r.pearson, want[0], 1e-12) && near(r.spearman, want[1], 1e-12) &&
                   near(r.mse, want[2], 1e-12),
               "case %d (regression, %d): pearson %.6f spearman %.6f mse %.6f vs %.6f %.6f %.6f",
               ncases, n, r.pearson, r.spearman, r.mse, want[0], want[1], want[2]);
        metrics_free(&m);
    }
    ok(ncases == 12, "all %d fixture cases read", ncases);
    fclose(f);
}

int main(void) {
    test_hand();
    test_names();
    test_fixture();
    return done_testing();
}
