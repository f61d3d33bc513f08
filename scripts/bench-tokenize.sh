#!/bin/sh
# bench-tokenize.sh: af-tokenize throughput on one core, in word pieces per second (the ids of
# the texts; [CLS]/[SEP] not counted), reading TSV and writing JSONL included.
#
#   scripts/bench-tokenize.sh [COPIES]    (default 10 copies of the input, for a steady timing)
#
# Input: SST-2 train with the bert-base-uncased vocabulary from ../shared/data when it is there,
# else the committed test corpus and vocabulary (tests/fixtures/tokenizer).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}/af-tokenize
copies=${1:-10}
data=${AF_DATA:-$top/../shared/data}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ -f "$data/glue/SST-2/train.tsv" ] && [ -f "$data/bert-base-uncased/vocab.txt" ]; then
    name="SST-2 train"
    vocab=$data/bert-base-uncased/vocab.txt
    head -1 "$data/glue/SST-2/train.tsv" >"$tmp/in.tsv"
    src=$data/glue/SST-2/train.tsv
    skip=2
else
    name="test corpus"
    vocab=$top/tests/fixtures/tokenizer/vocab.txt
    printf 'sentence\n' >"$tmp/in.tsv"
    src=$top/tests/fixtures/tokenizer/corpus.txt
    skip=1
fi
i=0
while [ "$i" -lt "$copies" ]; do
    tail -n +"$skip" "$src" | cut -f1 >>"$tmp/in.tsv"
    i=$((i + 1))
done

pin=
command -v taskset >/dev/null 2>&1 && pin="taskset -c 0"
# Best of three, to keep other work on the machine out of the figure.
best=
for run in 1 2 3; do
    $pin "$bin" --vocab "$vocab" --tsv --header --text sentence -o "$tmp/out.jsonl" \
        "$tmp/in.tsv" 2>"$tmp/stats"
    rate=$(sed -n 's/.* \([0-9]*\) tokens\/s.*/\1/p' "$tmp/stats")
    if [ -z "$best" ] || [ "$rate" -gt "$best" ]; then best=$rate; stats=$(cat "$tmp/stats"); fi
done
examples=$(echo "$stats" | sed -n 's/.*: \([0-9]*\) examples.*/\1/p')
tokens=$(echo "$stats" | sed -n 's/.*examples, \([0-9]*\) tokens.*/\1/p')
echo "af-tokenize: $name x$copies: $examples examples, $tokens word pieces:" \
    "$best tokens/s on one core (best of 3)"
