#!/usr/bin/python3
"""gen-roberta-base.py: the small random RoBERTa with its own byte-level BPE that
tests/cli/t1020-pretrain-roberta.sh continues with af-pretrain (tests/fixtures/pretrain-roberta/),
and the check that af-pretrain's output is a directory Hugging Face's RobertaForMaskedLM and
RobertaTokenizer load.

  /usr/bin/python3 scripts/gen-roberta-base.py [HUB_SRC]
      writes tests/fixtures/pretrain-roberta/base/: merges trained here on a little generated
      text (GPT-2's pre-tokenisation pattern and byte-to-unicode alphabet, the most frequent pair
      merged first, until every word is one symbol or 150 merges), vocab.json (<s> <pad> </s> <unk>, the 256 byte symbols, the
      merged symbols, <mask> last, as roberta-base orders them), merges.txt, and a
      RobertaForMaskedLM of Hugging Face's own init (hidden 16, 2 layers, 66 positions) saved as
      save_pretrained does (its _keys_to_ignore_on_save left out, the position_ids buffer kept),
      with tokenizer_config.json and config.json.
  /usr/bin/python3 scripts/gen-roberta-base.py [HUB_SRC] --check DIR [TEXT JSONL]
      loads DIR as from_pretrained would (its config.json, every tensor of model.safetensors by
      name into RobertaForMaskedLM: nothing missing but _keys_to_ignore_on_load_missing, nothing
      unexpected; the decoder tied to the word embeddings), runs the MLM loss on a masked line, and
      with TEXT and JSONL checks that RobertaTokenizer.from_pretrained(DIR) gives, line for line,
      the input_ids of JSONL (af-tokenize --model DIR --text 1 --tsv TEXT). Exits 1 on any failure.

HUB_SRC: adapter-transformers 3.2.1's sources (transformers 4.26.1), default /work/hub-src.
Debian's torch has no safetensors module, so files are read and written with scripts/stpy.py;
from_pretrained's own loading is emulated by load_state_dict and its ignore lists."""
import json
import os
import random
import re
import sys

import numpy as np
import regex
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ARGS = sys.argv[1:]
HUB = ARGS.pop(0) if ARGS and not ARGS[0].startswith("--") else "/work/hub-src"
sys.path.insert(0, os.path.abspath(HUB))
import stpy  # noqa: E402
import transformers.tokenization_utils_base as tub  # noqa: E402
from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizer  # noqa: E402

# Without the tokenizers package (Debian has none) transformers' stand-in AddedToken has no str()
# of its content, and the special tokens are looked up by that str(): given here as tokenizers'
# AddedToken has it (as scripts/bpe-compare.py does)
tub.AddedToken.__str__ = lambda self: self.content

OUT = os.path.join(HERE, "..", "tests", "fixtures", "pretrain-roberta", "base")
# GPT-2's pre-tokenisation (tokenization_roberta.py's self.pat)
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
# the words of t1020's corpus (and t1000's)
WORDS = [s.split() for s in ("cat dog bird fox horse mouse owl frog",
                             "red blue green small big old young quick",
                             "sat ran jumped slept walked swam flew hid",
                             "mat log tree rock hill pond barn wall")]


def byte_alphabet():
    """GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, every other byte
    for the next code point from U+0100 on (the space, 0x20, becomes U+0120 'Ġ')."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(0x100 + extra)
            extra += 1
    return out


def text(seed, n):
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        s = []
        for _ in range(2 + r.randrange(3)):
            k = r.randrange(8)
            s.append("the %s %s %s on the %s ." % (WORDS[1][k], WORDS[0][k], WORDS[2][k],
                                                   WORDS[3][r.randrange(8)]))
        lines.append(" ".join(s))
    return lines


def train_merges(lines, n):
    """Pair counts over the pre-tokenised words' symbols; the most frequent pair (ties: the
    smaller pair) is merged everywhere, n times."""
    alpha = byte_alphabet()
    words = {}
    for line in lines:
        for w in PAT.findall(line):
            sym = tuple(alpha[b] for b in w.encode("utf-8"))
            words[sym] = words.get(sym, 0) + 1
    merges = []
    for _ in range(n):
        pairs = {}
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] = pairs.get(p, 0) + c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def generate():
    os.makedirs(OUT, exist_ok=True)
    merges = train_merges(text(7, 400), 150)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in byte_alphabet().values():
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(OUT, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "RobertaTokenizer", "add_prefix_space": False,
                   "model_max_length": 64}, f, indent=2)
    c = RobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=66,
                      type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2, architectures=["RobertaForMaskedLM"])
    torch.manual_seed(17)
    m = RobertaForMaskedLM(c)
    c.to_json_file(os.path.join(OUT, "config.json"))
    skip = [re.compile(p) for p in m._keys_to_ignore_on_save or []]
    sd = {k: v for k, v in m.state_dict().items() if not any(p.search(k) for p in skip)}
    stpy.save(os.path.join(OUT, "model.safetensors"), sd, {"format": "pt"})
    print("%s: %d entries (%d merges), %d tensors" % (OUT, len(vocab), len(merges), len(sd)))


def check(d, text_path=None, jsonl_path=None):
    bad = []

    def report(what, good):
        print("%-70s %s" % (what, "ok" if good else "FAIL"))
        if not good:
            bad.append(what)

    c = RobertaConfig.from_pretrained(d)
    report("config.json: model_type roberta, RobertaForMaskedLM",
           c.model_type == "roberta" and c.architectures == ["RobertaForMaskedLM"])
    m = RobertaForMaskedLM(c)
    t, _ = stpy.load(os.path.join(d, "model.safetensors"))
    sd = {k: torch.tensor(np.asarray(v, dtype=np.float32)) if v.dtype != np.int64
          else torch.tensor(v) for k, v in t.items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    ign = [re.compile(p) for p in m._keys_to_ignore_on_load_missing or []]
    missing = [k for k in missing if not any(p.search(k) for p in ign)]
    ign = [re.compile(p) for p in m._keys_to_ignore_on_load_unexpected or []]
    unexpected = [k for k in unexpected if not any(p.search(k) for p in ign)]
    report("RobertaForMaskedLM: no missing weights %s" % (missing or ""), not missing)
    report("RobertaForMaskedLM: no unexpected weights %s" % (unexpected or ""), not unexpected)
    m.tie_weights()
    emb = m.roberta.embeddings.word_embeddings.weight
    report("lm_head.decoder tied to the word embeddings",
           m.lm_head.decoder.weight.data_ptr() == emb.data_ptr() and
           torch.equal(m.lm_head.decoder.bias, sd["lm_head.bias"]))
    tok = RobertaTokenizer.from_pretrained(d)
    report("RobertaTokenizer: %d ids = config vocab_size %d" % (len(tok), c.vocab_size),
           len(tok) == c.vocab_size)
    m.eval()
    ids = tok("the red cat sat on the mat .", return_tensors="pt")["input_ids"]
    labels = torch.full_like(ids, -100)
    labels[0, 3] = ids[0, 3]
    ids[0, 3] = tok.mask_token_id
    with torch.no_grad():
        loss = m(input_ids=ids, labels=labels).loss.item()
    report("MLM loss of a masked line finite (%.4f)" % loss, np.isfinite(loss))
    if text_path:
        with open(text_path, encoding="utf-8") as f:
            lines = [x.rstrip("\n") for x in f]
        with open(jsonl_path) as f:
            af = [json.loads(x)["input_ids"] for x in f]
        same = sum(tok(x)["input_ids"] == a for x, a in zip(lines, af))
        report("RobertaTokenizer.from_pretrained = af-tokenize on %d of %d lines" %
               (same, len(lines)), same == len(lines) == len(af))
    print("%d failed" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    if ARGS and ARGS[0] == "--check":
        sys.exit(check(*ARGS[1:4]))
    generate()
