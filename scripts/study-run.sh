#!/bin/sh
# study-run.sh: one run of the learning-curve study (scripts/study.mk): draw the seed's subset of
# the target's training set, train one method on it, score it on the target's dev set, and write
# one row `task method size seed accuracy` to OUT/runs/TASK/METHOD/SIZE-SEED.tsv.
#
# usage: study-run.sh TASK/METHOD/SIZE-SEED [SOURCE_ADAPTER...]
#   METHOD  head-only (a head on the frozen base), single (the target's own adapter), or a
#           fusion method of af-fuse (attention, weighted, ...) over the source adapters
#   SIZE    examples to draw, or "all"
# Environment (study.mk sets it): BIN BASE OUT MAXLEN BATCH THREADS MIN_PASSES MIN_EPOCHS
# ADAPTER_LR FUSION_LR.
set -eu
[ $# -ge 1 ] || { echo "usage: study-run.sh TASK/METHOD/SIZE-SEED [ADAPTER...]" >&2; exit 2; }
run=$1
shift
task=${run%%/*}
method=${run#*/}
method=${method%%/*}
sizeseed=${run##*/}
size=${sizeseed%-*}
seed=${sizeseed##*-}
case $seed in '' | *[!0-9]*) echo "study-run.sh: $run: no seed after the size" >&2; exit 2 ;; esac
train=$OUT/tok/$task.train.jsonl
dev=$OUT/tok/$task.dev.jsonl
sub=$OUT/sub/$task/$sizeseed.jsonl
dir=$OUT/runs/$task/$method
mkdir -p "$OUT/sub/$task" "$dir"

# The subset, shared by the methods of this size and seed: every example gets a key from a
# Park-Miller stream started at the seed (exact in any awk's doubles: the same subset on every
# machine); within each label the examples are ranked by key, and the ranks interleaved in
# proportion to the label's share, so that even 50 examples hold every label in its share of
# the full set. Written atomically: the methods of one subset may run at once.
if [ ! -s "$sub" ]; then
    awk -v seed="$seed" 'BEGIN { x = (seed * 7919 + 1) % 2147483647; if (x == 0) x = 1 }
        { x = (x * 16807) % 2147483647; lab = $0; sub(/.*"label":/, "", lab); sub(/[,}].*/, "", lab)
          printf "%s\t%010d\t%d\n", lab, x, NR }' "$train" |
        sort -t "$(printf '\t')" -k1,1 -k2,2n |
        awk -F '\t' '{ lab[NR] = $1; idx[NR] = $3; cnt[$1]++ }
            END { for (k = 1; k <= NR; k++) printf "%.9f\t%s\t%d\n", (seen[lab[k]]++ + 0.5) / cnt[lab[k]], lab[k], idx[k] }' |
        sort -t "$(printf '\t')" -k1,1n -k2,2 |
        awk -F '\t' -v n="$size" 'n == "all" || NR <= n + 0 { print $3 }' |
        awk 'NR == FNR { want[$1] = 1; next } FNR in want' - "$train" >"$sub.tmp.$$"
    mv "$sub.tmp.$$" "$sub"
fi
n=$(wc -l <"$sub")
[ "$n" -gt 0 ] || { echo "study-run.sh: $sub: empty subset" >&2; exit 1; }

# Every head gets all of the task's labels, in the order of the full set.
labels=$(sed -n 's/.*"label":"\([^"]*\)".*/\1/p' "$train" | sort -u | paste -sd, -)
epochs=$(((MIN_PASSES + n - 1) / n))
[ "$epochs" -ge "$MIN_EPOCHS" ] || epochs=$MIN_EPOCHS

# No dev set during training: the last weights are scored, so no method is picked at its best
# epoch on the very data it is scored on.
model=$dir/$sizeseed.safetensors
common="--base $BASE --threads $THREADS --quiet --batch-size $BATCH --max-len $MAXLEN --seed $seed
        --epochs $epochs --labels $labels --name $task -o $model"
case $method in
head-only)
    set -x
    "$BIN/af-train-adapter" $common --head-only --lr "$ADAPTER_LR" "$sub"
    { set +x; } 2>/dev/null
    use="--adapter $model"
    ;;
single)
    set -x
    "$BIN/af-train-adapter" $common --lr "$ADAPTER_LR" "$sub"
    { set +x; } 2>/dev/null
    use="--adapter $model"
    ;;
*)
    [ $# -ge 2 ] || { echo "study-run.sh: $run: fusion needs at least two source adapters" >&2; exit 2; }
    use=
    for a in "$@"; do use="$use --adapter $a"; done
    set -x
    "$BIN/af-fuse" $common $use --method "$method" --lr "$FUSION_LR" "$sub"
    { set +x; } 2>/dev/null
    use="$use --fusion $model"
    ;;
esac
"$BIN/af-infer" --base "$BASE" --threads "$THREADS" --max-len "$MAXLEN" $use -q \
    --metrics-json "$dir/$sizeseed.json" <"$dev" >/dev/null
acc=$(tr -d ' \n' <"$dir/$sizeseed.json" | sed -n 's/.*"accuracy":\([-0-9.eE+]*\).*/\1/p')
[ -n "$acc" ] || { echo "study-run.sh: $dir/$sizeseed.json: no accuracy" >&2; exit 1; }
printf '%s\t%s\t%s\t%s\t%s\n' "$task" "$method" "$n" "$seed" "$acc" >"$dir/$sizeseed.tsv.tmp"
mv "$dir/$sizeseed.tsv.tmp" "$dir/$sizeseed.tsv"
