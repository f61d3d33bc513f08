#!/usr/bin/python3
"""bpe-compare.py VOCAB_JSON MERGES_TXT DATA_DIR AF_TOKENIZE [HUB_SRC]: af-tokenize's byte-level
BPE against bpe_ref.py (a reimplementation of HF's slow RobertaTokenizer) and, given HUB_SRC (the
AdapterHub transformers 4.26.1 sources extracted by ../shared/peer/setup_adapterhub.sh), against
HF's RobertaTokenizer itself, on every line of the GLUE and SNLI TSVs under DATA_DIR:
each text column alone and, where a file has two, as a pair; no length limit, then pairs again
truncated to 32. Texts are cut from the lines with a plain split on tabs (the TSV reader is not
what is compared). Prints the counts; exits 1 on any difference, showing the first few.
Run by scripts/bpe-compare.sh, which fetches GPT-2's files."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe_ref  # noqa: E402

# file -> (header lines, text columns (0-based))
FILES = {
    "glue/CoLA/train.tsv": (0, [3]), "glue/CoLA/dev.tsv": (0, [3]),
    "glue/SST-2/train.tsv": (1, [0]), "glue/SST-2/dev.tsv": (1, [0]),
    "glue/MRPC/train.tsv": (1, [3, 4]), "glue/MRPC/dev.tsv": (1, [3, 4]),
    "glue/RTE/train.tsv": (1, [1, 2]), "glue/RTE/dev.tsv": (1, [1, 2]),
    "glue/STS-B/train.tsv": (1, [7, 8]), "glue/STS-B/dev.tsv": (1, [7, 8]),
    "snli/validation.tsv": (1, [0, 1]),
}


def hf_tokenizer(hub_src, vocab, merges):
    """HF's RobertaTokenizer as from_pretrained leaves it (sanitize_special_tokens after
    __init__; from_pretrained itself wants the tokenizers package, which Debian lacks, and so
    does AddedToken's str(), given here as tokenizers' AddedToken has it: its content)."""
    sys.path.insert(0, os.path.abspath(hub_src))
    import transformers.tokenization_utils_base as tub
    from transformers import RobertaTokenizer
    from transformers.utils import logging
    logging.set_verbosity_error()  # not a warning per truncated pair
    tub.AddedToken.__str__ = lambda self: self.content
    t = RobertaTokenizer(vocab, merges)
    t.sanitize_special_tokens()
    return t


def main():
    vocab, merges, data, prog = sys.argv[1:5]
    hf = hf_tokenizer(sys.argv[5], vocab, merges) if len(sys.argv) > 5 else None
    work = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bpe-compare")
    os.makedirs(work, exist_ok=True)
    ref = bpe_ref.Roberta(vocab, merges)
    rows = []  # (where, text, pair, max_len)
    for rel, (skip, cols) in FILES.items():
        path = os.path.join(data, rel)
        if not os.path.exists(path):
            print("missing %s" % path)
            continue
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
        for n, line in enumerate(lines[skip:], skip + 1):
            if not line:
                continue
            f_ = line.rstrip("\r").split("\t")
            texts = [f_[c] if c < len(f_) else "" for c in cols]
            for t in texts:
                rows.append(("%s:%d" % (rel, n), t, None, 0))
            if len(texts) == 2:
                rows.append(("%s:%d pair" % (rel, n), texts[0], texts[1], 0))
                rows.append(("%s:%d pair/32" % (rel, n), texts[0], texts[1], 32))
    bad = 0
    for max_len, paired in ((0, False), (0, True), (32, True)):
        sel = [r for r in rows if (r[2] is not None) == paired and r[3] == max_len]
        inp = os.path.join(work, "in.jsonl")
        with open(inp, "w", encoding="utf-8") as f:
            for _, t, p, _ in sel:
                f.write(json.dumps({"text": t, "pair": p} if paired else {"text": t}) + "\n")
        cmd = [prog, "--vocab", vocab, "--merges", merges, "--max-len", str(max_len), "--jsonl"]
        if paired:
            cmd += ["--pair", "pair"]
        out = subprocess.run(cmd + [inp], check=True, capture_output=True).stdout.decode()
        got = [json.loads(x)["input_ids"] for x in out.splitlines()]
        if len(got) != len(sel):
            print("%d lines in, %d out" % (len(sel), len(got)))
            return 1
        for (where, t, p, m), g in zip(sel, got):
            want = ref.encode(t, p, m)
            if hf is not None:
                h = (hf(t, p, truncation=True, max_length=m) if m else hf(t, p))["input_ids"]
                if h != want:
                    print("%s: bpe_ref.py and RobertaTokenizer differ: %s, %s" % (where, want, h))
                    bad += 1
            if g != want:
                bad += 1
                if bad <= 5:
                    print("%s: %r\n  want %s\n  got  %s" % (where, t, want, g))
        print("%s%s: %d inputs%s" % ("pairs" if paired else "texts",
                                     " truncated to %d" % max_len if max_len else "", len(sel),
                                     ", also RobertaTokenizer's" if hf is not None else ""))
    print("%d differ" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
