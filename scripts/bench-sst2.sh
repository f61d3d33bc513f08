#!/bin/sh
# bench-sst2.sh: the real-data row of `make bench`: one epoch of adapter training on SST-2 train
# (../shared/data/glue/SST-2/train.tsv, tokenized by af-tokenize with bert-base-uncased's
# vocabulary) on a random BERT-mini base (4 layers, hidden 256, vocabulary 30522), batches of 32,
# length-bucketed: af-train-adapter as a user runs it, and the PyTorch peer (scripts/bench-sst2.py)
# over the very same batches (tests/bench/bench-plan prints af's plan for epoch 0, seed 42).
#
# af's time is its whole process (reading 67k examples and writing the adapter included), the
# peer's its epoch loop alone, so the ratio leans, if anything, against af. Peak RSS of both from
# bench-rss. Skips what it cannot run: without the data it prints why; without torch, af alone.
#   env: AF_BENCH (bench programs), AF_BIN (af programs), AF_SHARED (../shared),
#        BENCH_THREADS (2), BENCH_PYTHON (/usr/bin/python3), BENCH_TORCH (0: skip the peer)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${AF_BENCH:-$top/build/rel/tests/bench}
bin=${AF_BIN:-$top/bin}
shared=${AF_SHARED:-$top/../shared}
threads=${BENCH_THREADS:-2}
py=${BENCH_PYTHON:-/usr/bin/python3}
torch=${BENCH_TORCH:-1}
tsv=$shared/data/glue/SST-2/train.tsv
vocab=$shared/data/bert-base-uncased/vocab.txt
if [ ! -f "$tsv" ] || [ ! -f "$vocab" ]; then
    echo "(skipped: $tsv or $vocab not found)"
    exit 0
fi
for p in "$dir/bench-model" "$dir/bench-rss" "$dir/bench-plan" "$bin/af-tokenize" \
    "$bin/af-train-adapter"; do
    [ -x "$p" ] || { echo "(skipped: $p not built; run 'make bench')"; exit 0; }
done
if [ "$torch" = 1 ] && ! { [ -f "$shared/peer/ref_adapterfusion.py" ] && "$py" -c 'import torch' 2>/dev/null; }; then
    torch=0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/afsst2.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$bin/af-tokenize" --vocab "$vocab" --tsv --header --text sentence --label label -q \
    -o "$tmp/train.jsonl" "$tsv"
"$dir/bench-model" --model mini --make-base "$tmp/base"
"$dir/bench-rss" "$bin/af-train-adapter" --base "$tmp/base" --name sst2 -o "$tmp/sst2.safetensors" \
    --epochs 1 --batch-size 32 --lr 1e-4 --threads "$threads" --seed 42 -q "$tmp/train.jsonl" \
    >"$tmp/af.out"
n=$(wc -l <"$tmp/train.jsonl")
aw=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' "$tmp/af.out")
ar=$(sed -n 's/.*rss_mib=\([0-9.]*\).*/\1/p' "$tmp/af.out")
printf '%-34s | %8s %8s %8s | %8s %8s %8s | %6s %6s\n' "SST-2 train, mini, 1 epoch, B=32" \
    "af s" "ex/s" "RSS MiB" "pt s" "ex/s" "RSS MiB" "speed" "RSS"
if [ "$torch" = 1 ]; then
    # token counts per example, in file order, for af's own batch plan
    sed 's/.*"input_ids":\[\([^]]*\)\].*/\1/' "$tmp/train.jsonl" | awk -F, '{ print NF }' |
        "$dir/bench-plan" --batch 32 --seed 42 >"$tmp/plan.txt"
    OMP_WAIT_POLICY=PASSIVE "$dir/bench-rss" "$py" "$top/scripts/bench-sst2.py" \
        --peer "$shared/peer" --data "$tmp/train.jsonl" --plan "$tmp/plan.txt" \
        --threads "$threads" >"$tmp/pt.out"
    tw=$(sed -n 's/.*epoch_s=\([0-9.]*\).*/\1/p' "$tmp/pt.out")
    tr_=$(sed -n 's/.*rss_mib=\([0-9.]*\).*/\1/p' "$tmp/pt.out")
    awk -v n="$n" -v aw="$aw" -v ar="$ar" -v tw="$tw" -v tr="$tr_" 'BEGIN {
        printf "%-34s | %8.1f %8.0f %8.0f | %8.1f %8.0f %8.0f | %5.2fx %5.2fx\n",
            n " examples", aw, n / aw, ar, tw, n / tw, tr, tw / aw, ar / tr }'
else
    awk -v n="$n" -v aw="$aw" -v ar="$ar" 'BEGIN {
        printf "%-34s | %8.1f %8.0f %8.0f | %8s %8s %8s |\n", n " examples", aw, n / aw, ar, "-", "-", "-" }'
fi
