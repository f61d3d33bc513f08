#!/bin/sh
# study.sh: the learning-curve study (`make study`, issue 22): does fusion help where the target
# task has little data? For each target, each training size and each seed (the seed draws the
# subset and seeds the training), train a head alone on the frozen base, the target's own adapter,
# and attention and weighted fusion of source adapters trained once on all their data; report dev
# accuracy as mean and sd over the seeds, and plot the learning curves (af-inspect --curves).
#
#   1. data     fortune (the demo's target; sources domain and gloss, scripts/demo-data.py) and
#               rt (rt-polarity movie reviews; sources SST-2, CoLA, SNLI: scripts/study-data.py,
#               from the shared data directory, ../shared/data by default)
#   2. base     af's embedded base (scripts/base)
#   3. runs     scripts/study.mk, two runs at a time with one thread each
#   4. results  RESULTS/study.tsv, RESULTS/study-runs.tsv, RESULTS/study.png, and the paired
#               differences of fusion and the baselines (study-paired.awk) in study-paired.txt
#
# usage: scripts/study.sh [--shared DIR] [--work DIR] [--results DIR] [--base DIR] [--data DIR]
#                         [--tasks "T:S1,S2 ..."] [--sizes "50 100 ..."] [--seeds N] [--jobs N]
#                         [--min-passes N] [--source-epochs N]
#   --data DIR    tasks already made (DIR/TASK/train.tsv, dev.tsv): step 1 is skipped
#   --base DIR    another base (the tests use a tiny random one)
# Environment: AF_BIN (programs; default bin/).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
shared=$top/../shared/data
work=$top/build/study
results=$top/scripts/study
base=
data=
tasks="fortune:domain,gloss rt:sst2,cola,snli"
sizes="50 100 300 1000 all"
seeds=5
jobs=2
min_passes=1200
source_epochs=3
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --shared | --work | --results | --base | --data | --tasks | --sizes | --seeds | --jobs | \
        --min-passes | --source-epochs)
        [ $# -ge 2 ] || { echo "study.sh: $1 needs a value" >&2; exit 2; } ;;
    *) echo "study.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    case $1 in
    --shared) shared=$2 ;;
    --work) work=$2 ;;
    --results) results=$2 ;;
    --base) base=$2 ;;
    --data) data=$2 ;;
    --tasks) tasks=$2 ;;
    --sizes) sizes=$2 ;;
    --seeds) seeds=$2 ;;
    --jobs) jobs=$2 ;;
    --min-passes) min_passes=$2 ;;
    --source-epochs) source_epochs=$2 ;;
    esac
    shift 2
done
case $seeds in '' | *[!0-9]* | 0) echo "study.sh: --seeds: a positive count expected, '$seeds' found" >&2; exit 2 ;; esac
say() { printf '\n== %s\n' "$*"; }
start=$(date +%s)
mkdir -p "$work" "$results"

# ---- 1. data ------------------------------------------------------------------------------
if [ -z "$data" ]; then
    say "1. data"
    if [ ! -s "$shared/rt-polarity/rt-polarity.pos" ]; then
        echo "study.sh: $shared: no shared data here (rt-polarity, glue/SST-2, glue/CoLA, snli);" >&2
        echo "          give its place with --shared DIR" >&2
        exit 1
    fi
    data=$work/data
    "$top/scripts/demo-src.sh" "$work/src"
    /usr/bin/python3 "$top/scripts/demo-data.py" "$work/src" "$data" 500 100
    /usr/bin/python3 "$top/scripts/study-data.py" "$shared" "$data" 8000 2000 1000
fi

# ---- 2. base ------------------------------------------------------------------------------
if [ -z "$base" ]; then
    say "2. base"
    if [ ! -s "$top/scripts/base/config.json" ]; then
        echo "study.sh: no embedded base in scripts/base (see scripts/base/README.txt)" >&2
        exit 1
    fi
    base=$("$top/scripts/base/assemble.sh" "$work/base")
fi

# ---- 3. runs ------------------------------------------------------------------------------
names=
sources=
for t in $tasks; do
    name=${t%%:*}
    src=${t#*:}
    [ "$src" != "$t" ] && [ -n "$name" ] || {
        echo "study.sh: --tasks: TARGET:SOURCE1,SOURCE2 expected, '$t' found" >&2
        exit 2
    }
    for f in "$data/$name/train.tsv" "$data/$name/dev.tsv"; do
        [ -s "$f" ] || { echo "study.sh: $f: not found" >&2; exit 1; }
    done
    names="$names $name"
    sources="$sources SOURCES_$name=$src"
done
seedlist=$(seq 1 "$seeds" | paste -sd ' ' -)
say "3. runs: targets$names; sizes $sizes; seeds $seedlist; $jobs at a time"
out=$work/out
# shellcheck disable=SC2086 # $sources: SOURCES_T=S1,S2 words, one per target
make --no-print-directory -f "$top/scripts/study.mk" -j"$jobs" BIN="$bin" BASE="$base" \
    DATA="$data" OUT="$out" TASKS="$names" SIZES="$sizes" SEEDS="$seedlist" \
    MIN_PASSES="$min_passes" SOURCE_EPOCHS="$source_epochs" $sources >"$work/study.log" 2>&1 || {
    tail -n 30 "$work/study.log" >&2
    echo "study.sh: a run failed; the log is $work/study.log" >&2
    exit 1
}

# ---- 4. results ---------------------------------------------------------------------------
say "4. results: dev accuracy, mean and sd over $seeds seeds"
cp "$out/study.tsv" "$results/study.tsv.tmp" && mv "$results/study.tsv.tmp" "$results/study.tsv"
cp "$out/study-runs.tsv" "$results/study-runs.tsv.tmp" &&
    mv "$results/study-runs.tsv.tmp" "$results/study-runs.tsv"
column -t -s "$(printf '\t')" "$results/study.tsv"
say "fusion against the baselines, paired by seed (the same subset)"
awk -f "$top/scripts/study-paired.awk" "$results/study-runs.tsv" >"$results/study-paired.txt.tmp"
mv "$results/study-paired.txt.tmp" "$results/study-paired.txt"
cat "$results/study-paired.txt"
"$bin/af-inspect" --curves --png "$results/study.png" "$results/study.tsv"
echo "plot: $results/study.png"
# The budget is CPU time (the machine may be shared): `times` gives this shell's children's
# user and sys time, every run included (run here, not in a pipeline's subshell).
times >"$work/times.txt"
echo "study finished in $(($(date +%s) - start)) s wall; CPU time user, sys: $(tail -n 1 "$work/times.txt")"
