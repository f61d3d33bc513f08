#!/bin/sh
# tokenizer-compare.sh: af-tokenize against scripts/tokenizer_ref.py (the algorithm in Python),
# over every text of ../shared/data with the bert-base-uncased vocabulary, plus the hard cases
# and random strings of scripts/tokenizer_cases.py. Every output must be identical, line for line.
#
#   scripts/tokenizer-compare.sh [DATA_DIR]     (default: ../shared/data beside the repository)
#
# Needs a Python whose unicodedata has the Unicode version af-tokenize's utf8proc has (see
# scripts/tokenizer-python.sh). Exit 0 when all agree, 1 on any difference, 77 when the data is
# not there.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$top/../shared/data}
bin=${AF_BIN:-$top/bin}/af-tokenize
vocab=$data/bert-base-uncased/vocab.txt
if [ ! -f "$vocab" ]; then
    echo "tokenizer-compare: no $vocab: nothing to compare" >&2
    exit 77
fi
[ -x "$bin" ] || { echo "tokenizer-compare: build first (make)" >&2; exit 1; }

unicode=$("$bin" --version | sed -n 's/.*Unicode \([0-9.]*\).*/\1/p')
if ! py=$("$top/scripts/tokenizer-python.sh" "$bin"); then
    py=${PYTHON:-python3}
    echo "tokenizer-compare: warning: using $py (characters assigned between its Unicode" \
        "version and $unicode may differ)" >&2
fi
echo "# af-tokenize (Unicode $unicode) vs $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokcmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
lines=0
runs=0
failed=0

# compare NAME FILE ARGS...: the same arguments to both; the outputs must be equal.
compare() {
    name=$1 file=$2
    shift 2
    runs=$((runs + 1))
    if ! "$bin" --vocab "$vocab" "$@" "$file" >"$tmp/c" 2>"$tmp/cerr"; then
        echo "FAIL $name: af-tokenize: $(head -1 "$tmp/cerr")"
        failed=$((failed + 1))
        return
    fi
    if ! "$py" "$top/scripts/tokenizer_ref.py" --vocab "$vocab" "$@" "$file" >"$tmp/p" 2>"$tmp/perr"; then
        echo "FAIL $name: reference: $(tail -1 "$tmp/perr")"
        failed=$((failed + 1))
        return
    fi
    n=$(wc -l <"$tmp/p")
    if cmp -s "$tmp/c" "$tmp/p"; then
        echo "ok   $name: $n lines"
        lines=$((lines + n))
    else
        first=$(cmp "$tmp/c" "$tmp/p" | sed -n 's/.* line \([0-9]*\).*/\1/p')
        echo "FAIL $name: first difference on output line $first"
        failed=$((failed + 1))
    fi
}

g=$data/glue
for split in train dev; do
    compare "SST-2 $split" "$g/SST-2/$split.tsv" --tsv --header --text sentence
    compare "CoLA $split" "$g/CoLA/$split.tsv" --tsv --text 4
    compare "RTE $split" "$g/RTE/$split.tsv" --tsv --header --text sentence1 --pair sentence2
    compare "MRPC $split" "$g/MRPC/$split.tsv" --tsv --header --text '#1 String' --pair '#2 String'
    compare "STS-B $split" "$g/STS-B/$split.tsv" --tsv --header --text sentence1 --pair sentence2
done
compare "MRPC msr_paraphrase_train" "$g/MRPC/msr_paraphrase_train.txt" --tsv --header \
    --text '#1 String' --pair '#2 String'
compare "SNLI validation" "$data/snli/validation.tsv" --tsv --header --text premise --pair hypothesis
for split in train val; do
    compare "CB $split" "$data/cb/$split.jsonl" --jsonl --text premise --pair hypothesis
done
for pol in pos neg; do
    compare "rt-polarity $pol" "$data/rt-polarity/rt-polarity.$pol" --tsv --text 1
done

# Truncation at work: pairs cut to 32 and to 11 ids; and the cased path over the same text.
compare "RTE train, --max-len 32" "$g/RTE/train.tsv" --tsv --header --text sentence1 \
    --pair sentence2 --max-len 32
compare "SNLI, --max-len 11" "$data/snli/validation.tsv" --tsv --header --text premise \
    --pair hypothesis --max-len 11
compare "CB train, --max-len 24" "$data/cb/train.jsonl" --jsonl --text premise --pair hypothesis \
    --max-len 24
compare "SST-2 dev, --no-lowercase" "$g/SST-2/dev.tsv" --tsv --header --text sentence --no-lowercase
compare "MRPC dev, --no-lowercase" "$g/MRPC/dev.tsv" --tsv --header --text '#1 String' \
    --pair '#2 String' --no-lowercase

# Hard cases and random strings.
"$py" "$top/scripts/tokenizer_cases.py" hard >"$tmp/hard.jsonl"
"$py" "$top/scripts/tokenizer_cases.py" random "${RANDOM_CASES:-20000}" 7 >"$tmp/random.jsonl"
for f in hard random; do
    compare "$f" "$tmp/$f.jsonl"
    compare "$f, pairs, --max-len 16" "$tmp/$f.jsonl" --pair pair --max-len 16
    compare "$f, --no-lowercase" "$tmp/$f.jsonl" --no-lowercase --pair pair --max-len 0
    compare "$f, --no-strip-accents" "$tmp/$f.jsonl" --no-strip-accents
    compare "$f, --no-lowercase --strip-accents" "$tmp/$f.jsonl" --no-lowercase --strip-accents
done

echo "# $runs runs, $lines lines identical, $failed runs differ"
[ "$failed" -eq 0 ]
