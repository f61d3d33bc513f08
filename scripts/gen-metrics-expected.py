#!/usr/bin/python3
"""gen-metrics-expected.py: expected metric values for tests/unit/metrics.c.

Run: /usr/bin/python3 scripts/gen-metrics-expected.py  (numpy only)
Writes tests/fixtures/metrics/cases.txt.

Debian here has neither scikit-learn nor scipy, so the references are written from their
definitions, deliberately by another route than lib/metrics.c takes (per-class precision and
recall with sklearn's zero_division=0 rule; MCC from covariances of one-hot vectors, which is how
Gorodkin defines R_K; ranks by counting; np.corrcoef):
  - sklearn.metrics.f1_score(average="macro"): mean over labels in gold ∪ predicted;
  - sklearn.metrics.matthews_corrcoef; 0 when a denominator is 0;
  - scipy.stats.pearsonr / spearmanr (average ranks for ties); nan when a side is constant.

Format, one case per block:
  cls K N / gold ... / pred ... / want accuracy f1 mcc
  reg N   / gold ... / pred ... / want pearson spearman mse
  ml L N  / gold (N rows of L 0/1, flattened) / pred ... / want micro_f1 exact_match
Multi-label: sklearn.metrics.f1_score(average="micro") on indicator matrices (precision and recall
of the pooled decisions, F1 of those; 0 when nothing is to be found or found) and
accuracy_score (subset accuracy: the whole row right)."""
import os

import numpy as np


def f1_macro(g, p):
    labels = sorted(set(g.tolist()) | set(p.tolist()))
    fs = []
    for c in labels:
        tp = np.sum((g == c) & (p == c))
        fp = np.sum((g != c) & (p == c))
        fn = np.sum((g == c) & (p != c))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        fs.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(fs))


def mcc(g, p, k):
    X = np.eye(k)[g]
    Y = np.eye(k)[p]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    cxy, cxx, cyy = np.sum(Xc * Yc), np.sum(Xc * Xc), np.sum(Yc * Yc)
    return float(cxy / np.sqrt(cxx * cyy)) if cxx * cyy > 0 else 0.0


def ranks(x):
    return np.array([np.sum(x < v) + (np.sum(x == v) + 1) / 2.0 for v in x])


def pearson(x, y):
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def cls_case(out, k, g, p):
    g, p = np.asarray(g), np.asarray(p)
    out.append(f"cls {k} {len(g)}")
    out.append("gold " + " ".join(map(str, g)))
    out.append("pred " + " ".join(map(str, p)))
    out.append("want %.17g %.17g %.17g" % (np.mean(g == p), f1_macro(g, p), mcc(g, p, k)))


def reg_case(out, g, p):
    g, p = np.asarray(g, float), np.asarray(p, float)
    out.append(f"reg {len(g)}")
    out.append("gold " + " ".join("%.17g" % v for v in g))
    out.append("pred " + " ".join("%.17g" % v for v in p))
    out.append("want %.17g %.17g %.17g" % (pearson(g, p), pearson(ranks(g), ranks(p)),
                                           np.mean((g - p) ** 2)))


def ml_case(out, g, p):
    g, p = np.asarray(g, int), np.asarray(p, int)
    n, k = g.shape
    out.append(f"ml {k} {n}")
    out.append("gold " + " ".join(map(str, g.ravel())))
    out.append("pred " + " ".join(map(str, p.ravel())))
    tp, fp, fn = np.sum(g & p), np.sum((1 - g) & p), np.sum(g & (1 - p))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    out.append("want %.17g %.17g" % (f1, np.mean(np.all(g == p, axis=1))))


def main():
    rng = np.random.default_rng(20240521)
    out = []
    # binary, noisy
    g = rng.integers(0, 2, 200)
    cls_case(out, 2, g, np.where(rng.random(200) < 0.8, g, 1 - g))
    # 3 classes, imbalanced
    g = rng.choice(3, 300, p=[0.6, 0.3, 0.1])
    cls_case(out, 3, g, np.where(rng.random(300) < 0.6, g, rng.integers(0, 3, 300)))
    # 5 declared labels, gold uses 0..2 and predictions add 4: macro over {0,1,2,4}
    g = rng.integers(0, 3, 50)
    p = np.where(rng.random(50) < 0.7, g, 4)
    cls_case(out, 5, g, p)
    # one gold class never predicted
    g = rng.integers(0, 3, 40)
    cls_case(out, 3, g, np.where(g == 2, 0, g))
    # constant predictions: MCC denominator 0
    cls_case(out, 2, rng.integers(0, 2, 30), np.zeros(30, int))
    # many classes
    g = rng.integers(0, 7, 1000)
    cls_case(out, 7, g, np.where(rng.random(1000) < 0.4, g, rng.integers(0, 7, 1000)))
    # regression: STS-B-like scores in [0, 5] with ties on both sides
    g = np.round(rng.random(120) * 10) / 2
    reg_case(out, g, np.round((g + rng.normal(0, 1, 120)) * 4) / 4)
    # continuous, negatively correlated
    x = rng.normal(0, 1, 80)
    reg_case(out, x, -0.5 * x + rng.normal(0, 1, 80))
    # constant prediction: Pearson and Spearman undefined
    reg_case(out, rng.normal(0, 1, 10), np.full(10, 2.5))
    # multi-label, drawn from their own generator so the cases above keep their numbers
    rng = np.random.default_rng(20261203)
    g = (rng.random((60, 4)) < 0.3).astype(int)
    ml_case(out, g, np.where(rng.random((60, 4)) < 0.85, g, 1 - g))
    g = (rng.random((40, 6)) < 0.15).astype(int)  # sparse, rows with the empty set
    ml_case(out, g, np.where(rng.random((40, 6)) < 0.9, g, 0))
    ml_case(out, np.zeros((5, 3), int), np.zeros((5, 3), int))  # nothing anywhere: F1 0, exact 1
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    d = os.path.join(top, "tests", "fixtures", "metrics")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cases.txt"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(os.path.join(d, "cases.txt"))


if __name__ == "__main__":
    main()
