#!/bin/sh
# base-candidates.sh: what makes af's small embedded base better for adapters? Pretrains one
# candidate recipe on the corpus `make base` uses and measures it the way issue #22 asks: the
# SST-2 adapter of scripts/sst2-compare.sh (same recipe, one seed) and, optionally, the demo's
# fusion target (scripts/demo.sh with AF_DEMO_BASE). MLM accuracy is recorded too, but it is not
# the measure: the README found that the two disagree.
#
# usage: scripts/base-candidates.sh NAME [--demo]
#
# NAME is a row of the table below: vocabulary size, extra af-pretrain options, steps. Every
# candidate otherwise trains make-base.sh's recipe (4 layers, hidden 256, 4 heads, FFN 1024,
# lr 1e-3 with 6% warmup, batches of 32 x 4 sequences of 128 tokens, dropout 0, seed 42), on
# THREADS threads (default 1, so two candidates can run side by side on 2 cores).
# Results: WORK/NAME/ (default WORK=build/candidates): the model, pretrain.log (the dev MLM
# evaluations), sst2.txt, demo.txt, and its row of WORK/results.tsv.
# A candidate that was interrupted resumes from its checkpoint when run again (THREADS may
# differ then). v8k is the recipe of the previous committed base (commit 0c0fe63's scripts/base,
# built on 2 threads), which the README's table uses as the control; v24k-ww was not run.
# When a table row changes, a finished candidate's directory must be removed by hand.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
work=${WORK:-$top/build/candidates}
threads=${THREADS:-1}

# name      vocab   steps  af-pretrain options
table='
v8k        8192    600
v24k       24576   600
v8k-ww     8192    600    --whole-word
v24k-ww    24576   600    --whole-word
'
[ $# -ge 1 ] || { echo "usage: $0 NAME [--demo]" >&2; exit 2; }
name=$1
demo=0
[ "${2:-}" = --demo ] && demo=1
row=$(printf '%s\n' "$table" | awk -v n="$name" '$1 == n')
[ -n "$row" ] || { echo "base-candidates.sh: no candidate '$name'" >&2; exit 2; }
vocab_size=$(echo "$row" | awk '{print $2}')
steps=$(echo "$row" | awk '{print $3}')
opts=$(echo "$row" | awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); print }')

corpus=${CORPUS:-$work/corpus}
if [ ! -s "$corpus/sources.tsv" ]; then "$top/scripts/build-corpus.sh" "$corpus"; fi
dir=$work/$name
mkdir -p "$dir"
vocab=$work/vocab-$vocab_size.txt
[ -s "$vocab" ] || "$bin/af-tokenize" --build-vocab "$vocab_size" -o "$vocab" "$corpus/train.txt.gz"

if grep -q '^flags.*\bavx512f\b' /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX; fi
model=$dir/base
if [ ! -s "$model/model.safetensors" ]; then
    resume=
    [ -f "$model.ckpt/trainer.safetensors" ] && resume=--resume
    eval_every=$((steps / 3))
    # shellcheck disable=SC2086 # word splitting of the option lists is intended
    "$bin/af-pretrain" --layers 4 --hidden 256 --heads 4 --ffn 1024 --vocab "$vocab" --max-pos 512 \
        --dropout 0 --max-len 128 --steps "$steps" --batch-size 32 --accumulate 4 --lr 1e-3 \
        --warmup-ratio 0.06 --eval-every "$eval_every" --save-every 50 $opts --seed 42 \
        --threads "$threads" --f16 --dev "$corpus/dev.txt.gz" --log "$dir/pretrain.log" $resume \
        -o "$model" "$corpus/train.txt.gz" 2>"$dir/pretrain.err"
    rm -rf "$model.ckpt"
fi
mlm=$(tail -n 1 "$dir/pretrain.log" | sed 's/.*"dev_accuracy":\([0-9.]*\).*/\1/')

WORK=$dir/sst2 THREADS=2 RANDOM_ROW=0 "$top/scripts/sst2-compare.sh" "$model" >"$dir/sst2.txt"
sst2=$(awk '/pretrained base/ {print $NF}' "$dir/sst2.txt")
fusion=- own=- head=-
if [ $demo = 1 ]; then
    AF_DEMO_BASE=$model "$top/scripts/demo.sh" --work "$dir/demo" >"$dir/demo.txt" 2>&1
    # the demo's table: method, size, mean, sd, per seed
    pick() { awk -v k="$1" '$1 == k && $2 ~ /^[0-9]+$/ {print $3; exit}' "$dir/demo.txt"; }
    fusion=$(pick attention) own=$(pick single) head=$(pick head-only)
fi
size=$(du -k "$model/model.safetensors" | cut -f1)
# the candidate's row replaces an earlier one of the same name; written whole, then renamed
tsv=$work/results.tsv
{
    printf 'name\tvocab\tsteps\toptions\tsize_kib\tdev_mlm_acc\tsst2_dev_acc\tdemo_fusion\tdemo_own\tdemo_head\n'
    [ -s "$tsv" ] && awk -F '\t' -v n="$name" 'NR > 1 && $1 != n' "$tsv"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$vocab_size" "$steps" "${opts:--}" \
        "$size" "$mlm" "$sst2" "$fusion" "$own" "$head"
} >"$tsv.tmp.$$"
mv "$tsv.tmp.$$" "$tsv"
grep "^$name	" "$tsv"
