#!/bin/sh
# bench-arch.sh [--batch B] [--seq S] [--steps N] [--modes a,b] [--hub-src DIR]: make bench's
# RoBERTa-base and DistilBERT-base rows: af's bench-model (random weights in each architecture's
# layout, model_run as the tools drive it) against the real AdapterHub
# (scripts/bench_torch_arch.py, RobertaAdapterModel / DistilBertAdapterModel), examples/s and peak
# RSS (each process's own), 2 threads, batch 16 x 128 tokens by default. The PyTorch column needs
# AdapterHub's sources extracted by ../shared/peer/setup_adapterhub.sh into build/hub-src (or
# --hub-src); without them af is printed alone. Only the ratios of one run mean much.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${AF_BENCH:-$top/build/rel/tests/bench}
py=${BENCH_PYTHON:-/usr/bin/python3}
threads=${BENCH_THREADS:-2}
B=16 S=128 steps=4 modes=infer_adapter,infer_fusion,adapter,fusion hub=$top/build/hub-src
while [ $# -gt 0 ]; do
    case $1 in
    --batch) B=$2; shift ;;
    --seq) S=$2; shift ;;
    --steps) steps=$2; shift ;;
    --modes) modes=$2; shift ;;
    --hub-src) hub=$2; shift ;;
    *) echo "bench-arch.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
torch=0
[ -d "$hub/transformers/adapters" ] && "$py" -c 'import torch' 2>/dev/null && torch=1
val() { tr ' ' '\n' | grep "^$1=" | head -1 | cut -d= -f2; }            # af: key=value
jval() { sed -n 's/.*"'"$1"'": \([^,}]*\).*/\1/p' | head -1; }           # the peer's JSON
echo "## RoBERTa-base and DistilBERT-base: af vs AdapterHub (PyTorch), ${B}x${S}, $threads threads"
printf '%-15s %-13s | %8s %8s | %8s %8s | %6s %5s\n' model mode "af ex/s" "RSS MiB" "pt ex/s" \
    "RSS MiB" speed RSS
for model in roberta-base distilbert-base; do
    for mode in $(echo "$modes" | tr , ' '); do
        a=$("$dir/bench-model" --model "$model" --mode "$mode" --batch "$B" --seq "$S" \
            --steps "$steps" --warmup 2 --threads "$threads")
        ae=$(echo "$a" | val ex_per_s) ar=$(echo "$a" | val maxrss_mib) te=- tr_=-
        if [ $torch = 1 ]; then
            t=$("$py" "$top/scripts/bench_torch_arch.py" --hub-src "$hub" --model "$model" \
                --mode "$mode" --batch "$B" --seq "$S" --steps "$steps" --threads "$threads" \
                2>/dev/null | tail -1)
            te=$(echo "$t" | jval ex_per_s) tr_=$(echo "$t" | jval maxrss_mib)
            [ -n "$te" ] || te=- tr_=-
        fi
        awk -v m="$model" -v o="$mode" -v ae="$ae" -v ar="$ar" -v te="$te" -v tr="$tr_" 'BEGIN {
            if (te == "-") printf "%-15s %-13s | %8.1f %8.0f | %8s %8s |\n", m, o, ae, ar, te, tr
            else printf "%-15s %-13s | %8.1f %8.0f | %8.1f %8.0f | %5.2fx %4.2fx\n", m, o, ae, ar,
                te, tr, ae / te, ar / tr }'
    done
done
echo "(speed = af/PyTorch examples/s; RSS = af/PyTorch peak RSS of each process)"
