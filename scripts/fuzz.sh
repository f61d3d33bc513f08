#!/bin/sh
# fuzz.sh: runs each libFuzzer target for SECONDS (default 600) from its seed corpus.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: safetensors jsonl torchfile (default: all)
# Findings land in build/fuzz/crash-TARGET-*; turn each into a regression test.
set -u
cd "$(dirname "$0")/.."
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"safetensors jsonl torchfile"}
make -s fuzz || exit 1
status=0
for t in $targets; do
    corpus=build/fuzz/corpus-$t
    mkdir -p "$corpus"
    seeds=tests/fuzz/seeds-$t
    [ "$t" = safetensors ] && seeds=tests/fixtures/safetensors
    dict=
    [ -f tests/fuzz/$t.dict ] && dict=-dict=tests/fuzz/$t.dict
    echo "fuzz-$t: ${secs}s, corpus $corpus, seeds $seeds"
    # One process at low priority: the machine is shared.
    if nice -n 10 build/fuzz/fuzz-$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix=build/fuzz/crash-$t- $dict "$corpus" "$seeds" \
        >build/fuzz/fuzz-$t.log 2>&1; then
        echo "fuzz-$t: no finding ($(ls "$corpus" | wc -l) inputs in corpus)"
        grep -E '^stat::number_of_executed_units|^stat::peak_rss' build/fuzz/fuzz-$t.log
    else
        echo "fuzz-$t: FINDING, see build/fuzz/fuzz-$t.log"
        tail -40 build/fuzz/fuzz-$t.log
        status=1
    fi
done
exit $status
