#!/bin/sh
# sst2-compare.sh: does the embedded base know English? The same adapter trained on SST-2 with
# af's pretrained base, with a random base of the same shape and vocabulary, and fastText
# (-wordNgrams 2) as a bag-of-n-grams yardstick; dev accuracies of all three.
#
# usage: scripts/sst2-compare.sh [BASEDIR]   (default: the committed base, scripts/base)
# Needs ../shared/data/glue/SST-2 and, for the third row, Debian's fasttext.
# The adapter keeps its best epoch by accuracy on the last 2,000 training sentences, held out from
# its training; the dev set is only scored, never used to choose.
# Environment: AF_BIN, EPOCHS (default 3), REDUCTION (default 4:
# a 64-unit bottleneck on the 256-wide base), THREADS (default 2), WORK (default build/sst2),
# RANDOM_ROW (default 1; 0 skips the random base's row, e.g. when comparing bases).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
work=${WORK:-$top/build/sst2}
epochs=${EPOCHS:-3}
reduction=${REDUCTION:-4}
threads=${THREADS:-2}
random_row=${RANDOM_ROW:-1}
sst=$top/../shared/data/glue/SST-2
[ -d "$sst" ] || { echo "sst2-compare.sh: $sst not found" >&2; exit 1; }
mkdir -p "$work"
base=${1:-}
if [ -z "$base" ]; then base=$("$top/scripts/base/assemble.sh" "$work/base"); fi

# a random base: the same config and vocabulary, BERT's initialisation, never trained (--lr 0)
random=$work/random-base
if [ "$random_row" = 1 ] && [ ! -s "$random/model.safetensors" ]; then
    cfg=$base/config.json
    get() { sed -n "s/.*\"$1\":[[:space:]]*\([0-9]*\).*/\1/p" "$cfg" | head -n 1; }
    cut -f1 "$sst/dev.tsv" | head -n 50 >"$work/one.txt" # one batch to take a step of lr 0 on
    "$bin/af-pretrain" --layers "$(get num_hidden_layers)" --hidden "$(get hidden_size)" \
        --heads "$(get num_attention_heads)" --ffn "$(get intermediate_size)" \
        --vocab "$base/vocab.txt" --steps 1 --lr 0 --batch-size 1 --max-len 16 -q \
        -o "$random" "$work/one.txt"
fi

for s in train dev; do
    "$bin/af-tokenize" --model "$base" --tsv --header --text sentence --label label \
        --max-len 64 -q -o "$work/$s.jsonl" "$sst/$s.tsv"
done
# the held-out part of train that picks the best epoch
head -n -2000 "$work/train.jsonl" >"$work/fit.jsonl"
tail -n 2000 "$work/train.jsonl" >"$work/val.jsonl"
run() { # name base (a finished run is kept: remove WORK/NAME.json to redo it)
    if [ ! -s "$work/$1.json" ]; then
    "$bin/af-train-adapter" --base "$2" --name sst2 --dev "$work/val.jsonl" --epochs "$epochs" \
        --reduction-factor "$reduction" --lr 1e-3 --threads "$threads" --seed 1 -q \
        -o "$work/$1.safetensors" "$work/fit.jsonl"
    "$bin/af-infer" --base "$2" --adapter "$work/$1.safetensors" --metrics-json "$work/$1.json" \
        <"$work/dev.jsonl" >/dev/null
    fi
    sed 's/.*"accuracy":\([0-9.]*\).*/\1/' "$work/$1.json" | awk '{ printf "%.3f", $1 }'
}
acc_base=$(run pretrained "$base")
acc_random=n/a
[ "$random_row" = 1 ] && acc_random=$(run random "$random")
acc_ft=n/a
if command -v fasttext >/dev/null 2>&1; then
    tail -n +2 "$sst/train.tsv" | awk -F'\t' '{print "__label__" $2 " " $1}' >"$work/ft.train"
    tail -n +2 "$sst/dev.tsv" | awk -F'\t' '{print "__label__" $2 " " $1}' >"$work/ft.dev"
    fasttext supervised -input "$work/ft.train" -output "$work/ft" -wordNgrams 2 -thread 1 \
        -seed 1 -verbose 0
    acc_ft=$(fasttext test "$work/ft.bin" "$work/ft.dev" | awk '/^P@1/ {print $2}')
fi
printf 'SST-2 dev accuracy (872 sentences)\n'
printf '  adapter (reduction %2d) on af'"'"'s pretrained base  %s\n' "$reduction" "$acc_base"
printf '  the same adapter on a random base of that shape  %s\n' "$acc_random"
printf '  fastText -wordNgrams 2                           %s\n' "$acc_ft"
