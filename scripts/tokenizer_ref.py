#!/usr/bin/env python3
"""tokenizer_ref.py: a reference for af-tokenize, written from the algorithm of Hugging Face's
slow BertTokenizer (BasicTokenizer + WordpieceTokenizer, driven by PreTrainedTokenizer.tokenize
and prepare_for_model), with nothing but the standard library. It does not import transformers.

It is deliberately written differently from lib/tokenizer.c (whole strings and Python's own
str.lower(), unicodedata.normalize and str.split(); truncation one token at a time) so that the
two agree only if both follow the algorithm.

Output: one JSON line per example, {"input_ids":[...],"token_type_ids":[...],"attention_mask":[...]}
with no spaces, the form af-tokenize writes when it is given no --label/--id/--keep/--task.

    tokenizer_ref.py --vocab V [--no-lowercase] [--[no-]strip-accents] [--max-len N]
                     [--tsv|--csv|--jsonl] [--header] [--text F] [--pair F] [--tokens] [FILE]

Unicode tables come from the running Python (unicodedata.unidata_version); af-tokenize's come
from utf8proc. Compare them with the same Unicode version (`af-tokenize --version` shows it).
"""
import argparse
import csv
import io
import json
import sys
import unicodedata

# Code point blocks HF's BasicTokenizer._is_chinese_char treats as CJK ideographs.
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK)


def load_vocab(path):
    # As HF's load_vocab: text mode (universal newlines), a token per line, the last duplicate wins.
    vocab = {}
    with open(path, "r", encoding="utf-8") as f:
        for i, line in enumerate(f.readlines()):
            vocab[line.rstrip("\n")] = i
    return vocab


class Reference:
    def __init__(self, vocab, lower=True, strip_accents=None, chinese=True):
        self.vocab = vocab
        self.lower = lower
        self.strip = lower if strip_accents is None else strip_accents
        self.chinese = chinese
        self.specials = [s for s in ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]") if s in vocab]

    def clean(self, text):
        out = []
        for ch in text:
            if ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
                continue
            out.append(" " if is_whitespace(ch) else ch)
        return "".join(out)

    def space_cjk(self, text):
        return "".join(" %s " % ch if is_cjk(ch) else ch for ch in text)

    def strip_accents(self, text):
        return "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")

    def split_punct(self, text):
        words, cur = [], ""
        for ch in text:
            if is_punctuation(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
        return words

    def basic(self, text):
        text = self.clean(text)
        if self.chinese:
            text = self.space_cjk(text)
        text = unicodedata.normalize("NFC", text)  # current HF; older versions skipped it
        out = []
        for tok in text.split():
            if tok in self.specials:
                out.append(tok)
                continue
            if self.lower:
                tok = tok.lower()
            if self.strip:
                tok = self.strip_accents(tok)
            out.extend(self.split_punct(tok))
        # HF joins and splits again on whitespace: that drops empty words.
        return " ".join(out).split()

    def wordpiece(self, word):
        # A special token kept whole by basic() is found here as the longest match, as in HF.
        if len(word) > 100:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = ("##" if start else "") + word[start:end]
                if sub in self.vocab:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(sub)
            start = end
        return pieces

    def split_on_specials(self, text):
        # PreTrainedTokenizer.tokenize: lower-case everything but the special tokens, one
        # character at a time (so no final-sigma context), then cut the special tokens out.
        parts, cur, i = [], [], 0
        while i < len(text):
            hit = next((s for s in self.specials if text.startswith(s, i)), None)
            if hit:
                parts.append(("text", "".join(cur)))
                parts.append(("special", hit))
                cur = []
                i += len(hit)
            else:
                cur.append(text[i].lower() if self.lower else text[i])
                i += 1
        parts.append(("text", "".join(cur)))
        return parts

    def tokenize(self, text):
        tokens = []
        for kind, part in self.split_on_specials(text):
            if kind == "special":
                tokens.append(part)
            elif part:
                for word in self.basic(part):
                    tokens.extend(self.wordpiece(word))
        return tokens

    def ids(self, text):
        return [self.vocab[t] for t in self.tokenize(text)]

    def encode(self, a, b=None, max_len=0):
        ia = self.ids(a)
        ib = self.ids(b) if b is not None else None
        if max_len:
            total = len(ia) + (len(ib) + 3 if ib is not None else 2)
            # truncate_sequences, 'longest_first', in the older step-by-step form.
            for _ in range(max(0, total - max_len)):
                if ib is None or len(ia) > len(ib):
                    ia = ia[:-1]
                else:
                    ib = ib[:-1]
        cls, sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        ids = [cls] + ia + [sep]
        types = [0] * len(ids)
        if ib is not None:
            ids += ib + [sep]
            types += [1] * (len(ib) + 1)
        return ids, types, [1] * len(ids)


def rows(args):
    raw = open(args.file, "rb").read() if args.file != "-" else sys.stdin.buffer.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if args.csv:
        for row in csv.reader(io.StringIO(raw.decode("utf-8"), newline="")):
            if row:
                yield row
        return
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        text = line.decode("utf-8")
        if args.tsv and text:
            yield text.split("\t")
        elif text.strip():
            yield json.loads(text)


def column(spec, header):
    if header is not None and spec in header:
        return header.index(spec)
    return int(spec) - 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", required=True)
    p.add_argument("--no-lowercase", dest="lower", action="store_false")
    p.add_argument("--lowercase", dest="lower", action="store_true")
    p.add_argument("--strip-accents", dest="strip", action="store_true", default=None)
    p.add_argument("--no-strip-accents", dest="strip", action="store_false")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--tsv", action="store_true")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--jsonl", action="store_true")
    p.add_argument("--header", action="store_true")
    p.add_argument("--text")
    p.add_argument("--pair")
    p.add_argument("--tokens", action="store_true", help="print the word pieces, not the JSON")
    p.add_argument("file", nargs="?", default="-")
    args = p.parse_args()
    ref = Reference(load_vocab(args.vocab), lower=args.lower, strip_accents=args.strip)
    out = sys.stdout
    with open(args.vocab, "r", encoding="utf-8") as f:  # id -> the text of its line
        names = {i: t.rstrip("\n") for i, t in enumerate(f.readlines())}
    header = None
    for row in rows(args):
        if args.tsv or args.csv:
            if args.header and header is None:
                header = row
                continue
            a = row[column(args.text or "1", header)]
            b = row[column(args.pair, header)] if args.pair else None
        else:
            a = row[args.text or "text"]
            b = row[args.pair] if args.pair else None
        ids, types, mask = ref.encode(a, b, args.max_len)
        if args.tokens:
            out.write(" ".join(names[i] for i in ids) + "\n")
            continue
        out.write(json.dumps({"input_ids": ids, "token_type_ids": types, "attention_mask": mask},
                             separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
