#!/usr/bin/python3
"""study-data.py: the learning-curve study's second target and its sources, as GLUE-style TSVs,
from the shared evaluation data (never copied into the repository: read where it lies).

usage: study-data.py SHARED OUTDIR [N_SOURCE [N_TRAIN [N_DEV]]]

SHARED is the directory /work/shared/data's README describes (glue/, snli/, rt-polarity/).
Writes OUTDIR/TASK/train.tsv (and dev.tsv for the target), header `sentence[<TAB>pair]<TAB>label`:
  rt     the target: movie-review polarity (rt-polarity), N_TRAIN train (default 2000) and N_DEV
         dev (default 1000), both balanced. Dev lines are drawn only from rt-polarity lines that
         are NOT rows of SST-2 train (SST was built from the same snippets), so the sst2 source
         adapter has never seen a dev sentence.
  sst2   source: SST-2 sentiment, N_SOURCE rows (default 4000) of at least 4 words
  cola   source: CoLA acceptability, N_SOURCE rows
  snli   source: SNLI entailment (premise/hypothesis pairs), N_SOURCE rows of its validation file
Sentiment from another corpus should help; grammaticality and entailment are there to be weighed
down. Deterministic: rows are ordered by a hash of their text."""
import csv
import hashlib
import os
import re
import sys


def key(s):
    return hashlib.sha256(s.encode()).hexdigest()


def norm(s):
    """How the overlap with SST-2 is judged: lower case, punctuation gone, spaces collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())


def clean(s):
    return " ".join(s.replace("\t", " ").split())


def lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [clean(l) for l in f if l.strip()]


def by_hash(rows):
    """De-duplicated on the text, in hash order: a fixed pseudo-random order."""
    seen = {}
    for r in rows:
        seen.setdefault(key("\t".join(r[:-1])), r)
    return [seen[k] for k in sorted(seen)]


def write(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cols = ["sentence", "pair", "label"] if len(rows[0]) == 3 else ["sentence", "label"]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.replace(tmp, path)


def tsv(path, skip_header=True):
    with open(path, encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if skip_header else rows


def need(path):
    if not os.path.exists(path):
        sys.exit(f"study-data: {path}: not found (the shared data directory, see its README)")
    return path


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    shared, out = sys.argv[1], sys.argv[2]
    n_src, n_train, n_dev = (list(map(int, sys.argv[3:6])) + [4000, 2000, 1000][len(sys.argv) - 3:])[:3]

    sst = tsv(need(f"{shared}/glue/SST-2/train.tsv"))
    sst_text = {norm(r[0]) for r in sst}
    sst_rows = by_hash([(clean(r[0]), r[1]) for r in sst if len(r[0].split()) >= 4])
    write(f"{out}/sst2/train.tsv", sst_rows[:n_src])

    cola = tsv(need(f"{shared}/glue/CoLA/train.tsv"), skip_header=False)
    write(f"{out}/cola/train.tsv", by_hash([(clean(r[3]), r[1]) for r in cola])[:n_src])

    snli = tsv(need(f"{shared}/snli/validation.tsv"))
    labels = {"0": "entailment", "1": "neutral", "2": "contradiction"}
    write(f"{out}/snli/train.tsv", by_hash([(clean(r[0]), clean(r[1]), labels[r[2]]) for r in snli])[:n_src])

    train, dev = [], []
    for label in ("negative", "positive"):
        rows = by_hash([(t, label) for t in lines(need(f"{shared}/rt-polarity/rt-polarity.{label[:3]}"))])
        fresh = [r for r in rows if norm(r[0]) not in sst_text]
        d = fresh[:n_dev // 2]
        taken = {r[0] for r in d}
        dev += d
        train += [r for r in rows if r[0] not in taken][:n_train // 2]
    write(f"{out}/rt/train.tsv", by_hash(train))
    write(f"{out}/rt/dev.tsv", by_hash(dev))
    print(f"study-data: rt: train {len(train)}, dev {len(dev)} (dev not in SST-2 train); "
          f"sources sst2, cola, snli: {n_src} rows each", file=sys.stderr)


main()
