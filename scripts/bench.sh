#!/bin/sh
# bench.sh: the throughput tables `make bench` prints. Each program in tests/bench prints its own
# table; AF_BENCH names the directory the Makefile built them in. Extra arguments go to every
# program (e.g. `scripts/bench.sh --model mini`). Threads default to 2, the figure the project
# compares against (../shared/peer/README.md); BENCH_THREADS overrides.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${AF_BENCH:-$top/build/rel/tests/bench}
threads=${BENCH_THREADS:-2}
if [ ! -x "$dir/bench-encoder" ]; then
    echo "bench.sh: $dir/bench-encoder not built; run 'make bench'" >&2
    exit 1
fi
# OpenBLAS reads its thread count at start-up too; the programs set it again from --threads.
export OPENBLAS_NUM_THREADS="$threads"
echo "# af bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $threads threads, random weights"
echo
echo "## encoder (BERT, batch 32, sequence 128; GFLOP/s counts matrix products only)"
"$dir/bench-encoder" --threads "$threads" "$@"
for prog in "$dir"/bench-*; do
    case $prog in */bench-encoder) continue ;; esac
    [ -x "$prog" ] || continue
    echo
    echo "## ${prog##*/bench-}"
    "$prog" --threads "$threads" "$@"
done
