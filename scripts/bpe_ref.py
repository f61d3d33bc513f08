"""bpe_ref.py: a reference for af-tokenize's byte-level BPE: Hugging Face's slow RobertaTokenizer
(transformers 4.26.1: tokenization_roberta.py and PreTrainedTokenizer.tokenize / _add_tokens /
truncate_sequences in tokenization_utils*.py), reimplemented here step by step from reading that
source (transformers is not installed; the `regex` module, which HF uses for the pattern, is:
Debian's python3-regex). Used by gen-bpe-fixtures.py and bpe-compare.sh.

    t = Roberta(vocab_json, merges_txt, add_prefix_space=False)
    t.encode(text, pair=None, max_len=0) -> input ids ([CLS] A [SEP] (</s> B </s>), truncated)
"""
import json

import regex as re

PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Roberta:
    # SPECIAL_TOKENS_ATTRIBUTES order: bos, eos, unk, sep, pad, cls, mask
    def __init__(self, vocab_json, merges_txt, add_prefix_space=False, bos="<s>", eos="</s>",
                 unk="<unk>", sep="</s>", pad="<pad>", cls="<s>", mask="<mask>", mask_lstrip=True):
        with open(vocab_json, encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(merges_txt, encoding="utf-8") as f:
            merges = f.read().split("\n")[1:-1]
        merges = [tuple(m.split()) for m in merges]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.add_prefix_space = add_prefix_space
        self.unk, self.sep, self.pad, self.cls = unk, sep, pad, cls
        specials = []
        for s in (bos, eos, unk, sep, pad, cls, mask):
            if s not in specials:
                specials.append(s)
        # _add_tokens(all_special_tokens, special_tokens=True)
        unk_id = self.encoder.get(unk)
        added = []
        for s in specials:
            if s != unk and self.encoder.get(s, unk_id) == unk_id and s not in added:
                added.append(s)
        self.added = {s: len(self.encoder) + i for i, s in enumerate(added)}
        self.no_split = sorted(set(specials))
        self.lstrip = {mask: mask_lstrip}
        self.cache = {}

    def to_id(self, tok):
        if tok in self.added:
            return self.added[tok]
        return self.encoder.get(tok, self.encoder.get(self.unk))

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word[:-1], word[1:]))
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        self.cache[token] = word
        return word

    def split_specials(self, text):
        """HF's Trie.split on the no-split tokens: at the earliest position, the longest."""
        out, i, start = [], 0, 0
        while i < len(text):
            best = None
            for s in self.no_split:
                if text.startswith(s, i) and (best is None or len(s) > len(best)):
                    best = s
            if best is None:
                i += 1
                continue
            if i > start:
                out.append(text[start:i])
            out.append(best)
            i += len(best)
            start = i
        if start < len(text):
            out.append(text[start:])
        return out

    def tokenize(self, text):
        if self.add_prefix_space and len(text) > 0 and not text[0].isspace():
            text = " " + text
        tokens = self.split_specials(text)
        for i, tok in enumerate(tokens):
            if tok in self.no_split and self.lstrip.get(tok) and i > 0 and tokens[i - 1]:
                tokens[i - 1] = tokens[i - 1].rstrip()
        out = []
        for tok in tokens:
            if not tok:
                continue
            if tok in self.no_split:
                out.append(tok)
                continue
            for part in re.findall(PAT, tok):
                part = "".join(self.byte_encoder[b] for b in part.encode("utf-8"))
                out.extend(self.bpe(part))
        return out

    def ids(self, text):
        return [self.to_id(t) for t in self.tokenize(text)]

    def encode(self, text, pair=None, max_len=0):
        a = self.ids(text)
        b = self.ids(pair) if pair is not None else None
        if max_len:
            a, b = truncate(a, b, max_len - (4 if b is not None else 2))
        cls, sep = self.to_id(self.cls), self.to_id(self.sep)
        if b is None:
            return [cls] + a + [sep]
        return [cls] + a + [sep, sep] + b + [sep]


def truncate(a, b, limit):
    """truncate_sequences, 'longest_first': one token at a time from the longer (B on a tie)."""
    a, b = list(a), (list(b) if b is not None else None)
    n = len(a) + (len(b) if b is not None else 0) - limit
    for _ in range(max(n, 0)):
        if b is None or len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b
