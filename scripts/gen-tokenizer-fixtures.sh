#!/bin/sh
# gen-tokenizer-fixtures.sh: writes tests/fixtures/tokenizer/ for tests/cli/t0700-tokenize.sh.
#
#   corpus.txt   text written for the tests (scripts/tokenizer_cases.py corpus)
#   vocab.txt    `af-tokenize --build-vocab 1500 --no-lowercase` over corpus.txt: the test
#                vocabulary, and the expected output of that command (it must not change)
#   cases.jsonl  the hard cases and 300 random strings, {"text", "pair"}
#   expect-*.jsonl / expect-*.txt
#                scripts/tokenizer_ref.py's output over cases.jsonl with vocab.txt, one file per
#                set of options (see the list below)
#
# No dataset text and no downloaded vocabulary end up in the repository. Needs `make` first and
# a Python with af-tokenize's Unicode version (scripts/tokenizer-python.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/bin/af-tokenize
out=$top/tests/fixtures/tokenizer
py=$("$top/scripts/tokenizer-python.sh" "$bin")
mkdir -p "$out"
"$py" "$top/scripts/tokenizer_cases.py" corpus >"$out/corpus.txt"
"$bin" --build-vocab 1500 --no-lowercase -q -o "$out/vocab.txt" "$out/corpus.txt"
{
    "$py" "$top/scripts/tokenizer_cases.py" hard
    "$py" "$top/scripts/tokenizer_cases.py" random 300 11
} >"$out/cases.jsonl"
ref() {
    name=$1
    shift
    "$py" "$top/scripts/tokenizer_ref.py" --vocab "$out/vocab.txt" "$@" "$out/cases.jsonl" \
        >"$out/$name"
}
# Keep this list in step with tests/cli/t0700-tokenize.sh.
ref expect-lower.jsonl
ref expect-lower-tokens.txt --tokens
ref expect-cased-pairs.jsonl --no-lowercase --pair pair --max-len 0
ref expect-pairs16.jsonl --pair pair --max-len 16
ref expect-nostrip.jsonl --no-strip-accents
ref expect-cased-strip.jsonl --no-lowercase --strip-accents --max-len 24
wc -l "$out"/* | sed 's|'"$top"'/||'
