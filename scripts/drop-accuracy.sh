#!/bin/sh
# drop-accuracy.sh: what AdapterDrop costs on the demo's target task. For each K, the demo's
# attention fusion (same data, adapters and flags as scripts/demo.sh) is trained again with
# --drop-layers K, and af-infer --metrics scores it on the target's dev set; a table of K,
# accuracy, macro-F1, MCC and the training's wall time follows. With --adapters-too the two
# source adapters are trained with --drop-layers K as well (AdapterDrop in both phases).
#
# usage: scripts/drop-accuracy.sh [--work DIR] [--layers "0 1 2 3"] [--adapters-too]
#
# DIR is the demo's work directory (default build/demo; `make demo` makes it): its base, and in
# out/ the tokenized data and the source adapters. Results go to DIR/drop/. The demo's base has
# 4 layers, so K runs over 0..3. Environment: AF_BIN (programs; default bin/).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
work=$top/build/demo
layers="0 1 2 3"
adapters_too=0
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2; shift ;;
    --layers) layers=$2; shift ;;
    --adapters-too) adapters_too=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "drop-accuracy.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
out=$work/out
base=$work/base
[ -d "$work/random-base" ] && [ ! -d "$base" ] && base=$work/random-base
for f in "$base/config.json" "$out/fortune.train.jsonl" "$out/fortune.dev.jsonl" \
    "$out/adapter-domain.safetensors" "$out/adapter-gloss.safetensors"; do
    [ -s "$f" ] || { echo "drop-accuracy.sh: $f missing: run make demo first" >&2; exit 1; }
done
drop=$work/drop
mkdir -p "$drop"
# the demo's flags (scripts/demo.sh, experiment.mk)
common="--base $base --threads 1 --quiet --epochs 3 --batch-size 16"

printf 'K\taccuracy\tmacro-F1\tMCC\ttrain_s\n' >"$drop/results.tsv"
for k in $layers; do
    a1=$out/adapter-domain.safetensors a2=$out/adapter-gloss.safetensors
    if [ $adapters_too = 1 ] && [ "$k" -gt 0 ]; then
        for t in domain gloss; do
            "$bin/af-train-adapter" $common --lr 1e-3 --drop-layers "$k" --name "$t" \
                --dev "$out/$t.dev.jsonl" -o "$drop/adapter-$t-k$k.safetensors" \
                "$out/$t.train.jsonl"
        done
        a1=$drop/adapter-domain-k$k.safetensors a2=$drop/adapter-gloss-k$k.safetensors
    fi
    t0=$(date +%s.%N)
    "$bin/af-fuse" $common --lr 5e-4 --drop-layers "$k" --adapter "$a1" --adapter "$a2" \
        --method attention --name fortune --dev "$out/fortune.dev.jsonl" \
        -o "$drop/fusion-k$k.safetensors" "$out/fortune.train.jsonl"
    t1=$(date +%s.%N)
    "$bin/af-infer" --base "$base" --adapter "$a1" --adapter "$a2" \
        --fusion "$drop/fusion-k$k.safetensors" --metrics-json "$drop/fusion-k$k.json" \
        <"$out/fortune.dev.jsonl" >/dev/null
    tr -d ' \n' <"$drop/fusion-k$k.json" |
        sed 's/.*"accuracy":\([^,}]*\).*"f1":\([^,}]*\).*"mcc":\([^,}]*\).*/\1 \2 \3/' |
        awk -v k="$k" -v s="$(echo "$t1 - $t0" | bc)" \
            '{ printf "%s\t%.3f\t%.3f\t%.3f\t%.1f\n", k, $1, $2, $3, s }' >>"$drop/results.tsv"
done
column -t -s "$(printf '\t')" "$drop/results.tsv"
