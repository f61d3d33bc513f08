#!/bin/sh
# bench.sh: what `make bench` prints: af against the PyTorch peer (../shared/peer), side by side.
#
#   scripts/bench.sh [--quick] [--model mini|base|all] [--mode infer_adapter,infer_fusion,...]
#                    [--repeat N] [--steps N] [--blas-core NAME|auto|env] [--no-torch] [--no-sst2]
#                    [--no-tokenize] [--no-pretrain] [--encoder]
#
#   --quick      mini only, no SST-2 epoch, no tokenizer or pretraining figure (about a minute)
#   --model      which sizes (default all: mini 32x64 and base 16x128)
#   --mode       which modes, comma-separated, of infer (base and head), infer_adapter (one
#                adapter), infer_fusion (attention fusion of 3), adapter, fusion (training)
#                (default infer_adapter,infer_fusion,adapter,fusion)
#   --no-ort     without the ONNX Runtime column of the inference rows
#   --repeat N   measure every pair N times, af and PyTorch alternating; best of N each (default 1)
#   --steps N    timed steps per measurement (default 10 on mini, 4 on base; 3 and 2 warm-up)
#   --blas-core  OPENBLAS_CORETYPE for both sides. auto (the default): unset, OpenBLAS picks its
#                kernels by CPU, as ../shared/peer/sgemm_peak.txt was measured; env: whatever the
#                environment says (this machine type sets Haswell, the AVX2 kernels, which the
#                tools then run with too; see README, Performance); else that core by name
#   --encoder    also the per-phase encoder table (tests/bench/bench-encoder)
#   --no-pretrain  without the MLM pretraining tokens/s (tests/bench/bench-pretrain, af alone)
#   --no-arch    without the RoBERTa-base and DistilBERT-base rows (scripts/bench-arch.sh, against
#                the real AdapterHub when build/hub-src holds it)
#
# Every figure is one process: af's bench-model (model_run as the tools drive it) and the peer's
# bench_torch.py --impl ref, each under bench-rss, which reads the child's peak RSS from wait4.
# GFLOP/s use the peer's flops_per_step for both, so they compare; % of peak is against the best
# 2-thread sgemm rate of ../shared/peer/sgemm_peak.txt (measured here when that file is absent).
# The machine is shared: only the ratios of one run mean much. Without Debian's python3-torch, or
# without ../shared, the af columns are printed alone. Threads: 2 (BENCH_THREADS overrides).
# ONNX Runtime (the inference peer a CPU user would pick) runs the peer's models exported to ONNX,
# with npm's onnxruntime-node, when scripts/ort-setup.sh has installed them in build/ort (AF_ORT);
# its kernels use AVX-512 where the CPU has it, whatever OPENBLAS_CORETYPE says.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${AF_BENCH:-$top/build/rel/tests/bench}
shared=${AF_SHARED:-$top/../shared}
peer=$shared/peer
threads=${BENCH_THREADS:-2}
py=${BENCH_PYTHON:-/usr/bin/python3}
models=all modes=infer_adapter,infer_fusion,adapter,fusion repeat=1 steps= torch=1 ort_on=1
sst2=1 tok=1 pre=1 encoder=0 core=auto arch=1
while [ $# -gt 0 ]; do
    case $1 in
    --quick) models=mini sst2=0 tok=0 pre=0 arch=0 ;;
    --model) models=$2; shift ;;
    --mode) modes=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --steps) steps=$2; shift ;;
    --blas-core) core=$2; shift ;;
    --no-torch) torch=0 ;;
    --no-ort) ort_on=0 ;;
    --no-sst2) sst2=0 ;;
    --no-tokenize) tok=0 ;;
    --no-pretrain) pre=0 ;;
    --no-arch) arch=0 ;;
    --encoder) encoder=1 ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$models" = all ] && models="mini base"
modes=$(echo "$modes" | tr ',' ' ')
for p in bench-model bench-rss; do
    if [ ! -x "$dir/$p" ]; then
        echo "bench.sh: $dir/$p not built; run 'make bench'" >&2
        exit 1
    fi
done
export OPENBLAS_NUM_THREADS="$threads"
env_core=${OPENBLAS_CORETYPE:-}
case $core in
env) ;;
auto) unset OPENBLAS_CORETYPE ;;
*) export OPENBLAS_CORETYPE="$core" ;;
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/afbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The peer's ceiling: its best 2-thread sgemm rate (bench_torch.py's default_peak), else measured.
peak=
here=$("$dir/bench-model" --measure-peak --threads "$threads")
if [ -f "$peer/sgemm_peak.txt" ]; then
    peak=$(awk '$NF ~ /%$/ && $(NF-1) ~ /%$/ { if ($(NF-3) + 0 > m) m = $(NF-3) + 0 }
                END { if (m) print m }' "$peer/sgemm_peak.txt")
    peak_src="sgemm_peak.txt"
fi
if [ -z "$peak" ]; then
    peak=${here%% *}
    peak_src="measured here"
fi
if [ $torch = 1 ] && ! { [ -f "$peer/bench_torch.py" ] && "$py" -c 'import torch' 2>/dev/null; }; then
    echo "(PyTorch peer not available: $py without torch, or no $peer; af columns only)"
    torch=0
fi

ort=${AF_ORT:-$top/build/ort}
if [ $ort_on = 1 ] && ! { command -v node >/dev/null 2>&1 &&
    [ -d "$ort/node_modules/onnxruntime-node" ] && [ -f "$peer/ort/bench_ort.js" ]; }; then
    echo "(ONNX Runtime not installed: scripts/ort-setup.sh installs it in $ort; no ORT column)"
    ort_on=0
fi
echo "# af bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $threads threads," \
    "sgemm peak $peak GFLOP/s ($peak_src)"
echo "# OpenBLAS core ${here#* } (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}): 2048x768.768x3072" \
    "split over af's $threads threads runs at ${here%% *} GFLOP/s here now;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$env_core" ] && [ "$env_core" != "${OPENBLAS_CORETYPE:-}" ]; then
    echo "# (the environment sets OPENBLAS_CORETYPE=$env_core, which af's tools run with;" \
        "--blas-core env measures that)"
fi
echo

# key=value lines (af, bench-rss) or the peer's JSON line -> value of one key
val() { tr -d '{}",' <"$1" | tr ' ' '\n' | sed -n "s/^$2[=:]//p" | tail -1; }
# the peer prints "key": value; make that key=value
flatten() { sed 's/": /=/g; s/"//g; s/[{},]/ /g' "$1" >"$1.kv" && mv "$1.kv" "$1"; }
better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a + 0 > b + 0) }'; }

# one measurement: run IMPL MODEL MODE -> $tmp/IMPL-MODEL-MODE (best of repeats, by ex/s);
# MODE fuse-mb0: af's fusion training with --micro-batch 0 (whole batches in one pass)
measure() {
    impl=$1 model=$2 mode=$3 bmode=$3 extra= base=base-$2 f16=
    [ "$mode" = fuse-mb0 ] && bmode=fusion extra="--micro-batch 0"
    [ "$mode" = f16-adapter ] && bmode=infer_adapter base=base16-$2 f16=--f16
    if [ "$model" = mini ]; then B=32 S=64 n=${steps:-10} w=3; else B=16 S=128 n=${steps:-4} w=2; fi
    out=$tmp/run.$$
    if [ "$impl" = ort ]; then
        onnx=$ort/models/${model}_${mode#infer_}.onnx
        [ -f "$onnx" ] || { echo "ORT: $onnx missing (scripts/ort-setup.sh)" >&2; return 0; }
        NODE_PATH=$ort/node_modules node "$peer/ort/bench_ort.js" --onnx "$onnx" --batch $B \
            --seq $S --threads "$threads" --steps "$n" --warmup $w >"$out" 2>"$out.err" || {
            echo "ORT $model $mode failed: $(tail -1 "$out.err")" >&2; return 0; }
        flatten "$out"
    elif [ "$impl" = af ]; then
        # the random base, written once by a process of its own and read back as the tools do
        [ -d "$tmp/$base" ] || "$dir/bench-model" --model "$model" --make-base "$tmp/$base" $f16
        "$dir/bench-rss" "$dir/bench-model" --model "$model" --mode "$bmode" --batch $B --seq $S \
            --base "$tmp/$base" $extra \
            --threads "$threads" --steps "$n" --warmup $w --peak "$peak" >"$out" 2>"$out.err" || {
            echo "af $model $mode failed: $(tail -1 "$out.err")" >&2; return 0; }
    else
        tmode=$mode
        OMP_WAIT_POLICY=PASSIVE "$dir/bench-rss" "$py" "$peer/bench_torch.py" --impl ref \
            --model "$model" --mode "$tmode" --batch $B --seq $S --threads "$threads" \
            --steps "$n" --warmup $w --peak "$peak" >"$out" 2>"$out.err" || {
            echo "PyTorch $model $mode failed: $(tail -1 "$out.err")" >&2; return 0; }
        flatten "$out"
    fi
    best=$tmp/$impl-$model-$mode
    if [ ! -f "$best" ] || better "$(val "$out" ex_per_s)" "$(val "$best" ex_per_s)"; then
        mv "$out" "$best"
    fi
}

target() { # model mode -> speed target
    case $1-$2 in
    mini-infer*) echo 2 ;; mini-adapter) echo 2.5 ;; mini-fusion) echo 3 ;;
    base-infer*) echo 1.2 ;; base-adapter) echo 1.3 ;; base-fusion) echo 1.6 ;;
    esac
}

echo "## af vs PyTorch (ref_adapterfusion.py): examples/s, GFLOP/s by the peer's flops_per_step"
printf '%-5s %-7s %-13s | %8s %7s %5s %8s | %8s %7s %5s %8s | %6s %5s %6s %s\n' \
    model shape mode "af ex/s" GFLOP/s %pk "RSS MiB" "pt ex/s" GFLOP/s %pk "RSS MiB" \
    speed want "RSS" met
for model in $models; do
    # base fusion training also with --micro-batch 8, against the peer's full batch
    more=
    [ "$model" = base ] && case " $modes " in *" fusion "*) more=fuse-mb0 ;; esac
    for mode in $modes $more; do
        r=0
        while [ $r -lt "$repeat" ]; do
            measure af "$model" "$mode"
            [ $torch = 1 ] && [ "$mode" != fuse-mb0 ] && measure torch "$model" "$mode"
            case $mode in infer_*) [ $ort_on = 1 ] && measure ort "$model" "$mode" ;; esac
            r=$((r + 1))
        done
        tmode=$mode
        [ "$mode" = fuse-mb0 ] && tmode=fusion
        a=$tmp/af-$model-$mode t=$tmp/torch-$model-$tmode
        [ -f "$a" ] || continue
        if [ "$model" = mini ]; then shape=32x64; else shape=16x128; fi
        ae=$(val "$a" ex_per_s) ag=$(val "$a" gflops) ap=$(val "$a" pct_sgemm_peak)
        ar=$(val "$a" rss_mib)
        if [ -f "$t" ]; then
            te=$(val "$t" ex_per_s) tg=$(val "$t" gflops) tp=$(val "$t" pct_sgemm_peak)
            tr_=$(val "$t" rss_mib)
            want=$(target "$model" "$tmode")
            awk -v m="$model" -v s="$shape" -v o="$mode" -v ae="$ae" -v ag="$ag" -v ap="$ap" \
                -v ar="$ar" -v te="$te" -v tg="$tg" -v tp="$tp" -v tr="$tr_" -v w="$want" 'BEGIN {
                sp = ae / te; rr = ar / tr
                met = (sp >= w ? "speed" : "SPEED MISSED") "," (rr <= 0.25 ? "rss" : "RSS MISSED")
                printf "%-5s %-7s %-13s | %8.1f %7.1f %5.1f %8.0f | %8.1f %7.1f %5.1f %8.0f | %5.2fx %4.1fx %5.2fx %s\n",
                    m, s, o, ae, ag, ap, ar, te, tg, tp, tr, sp, w, rr, met }'
        else
            awk -v m="$model" -v s="$shape" -v o="$mode" -v ae="$ae" -v ag="$ag" -v ap="$ap" \
                -v ar="$ar" 'BEGIN {
                printf "%-5s %-7s %-13s | %8.1f %7.1f %5.1f %8.0f | %8s %7s %5s %8s |\n",
                    m, s, o, ae, ag, ap, ar, "-", "-", "-", "-" }'
        fi
    done
done
echo "(speed = af/PyTorch examples/s, target 'want'; RSS = af/PyTorch peak RSS, target <= 0.25x;" \
    "best of $repeat; af trains in passes within 512 MiB, as its tools do by default;" \
    "fuse-mb0: --micro-batch 0, whole batches in one pass)"

if [ $ort_on = 1 ]; then
    echo
    echo "## inference: af vs ONNX Runtime (onnxruntime-node, graph optimisation all) and PyTorch"
    printf '%-5s %-7s %-13s | %8s %8s | %8s %8s | %8s %8s | %6s %6s %s\n' model shape mode \
        "af ex/s" "RSS MiB" "ort ex/s" "RSS MiB" "pt ex/s" "RSS MiB" af/ort RSS "(target 1.3x)"
    for model in $models; do
        for mode in $modes; do
            case $mode in infer_*) ;; *) continue ;; esac
            a=$tmp/af-$model-$mode o=$tmp/ort-$model-$mode t=$tmp/torch-$model-$mode
            [ -f "$a" ] && [ -f "$o" ] || continue
            if [ "$model" = mini ]; then shape=32x64; else shape=16x128; fi
            te=- tr_=-
            [ -f "$t" ] && te=$(val "$t" ex_per_s) tr_=$(val "$t" rss_mib)
            awk -v m="$model" -v s="$shape" -v o="$mode" -v ae="$(val "$a" ex_per_s)" \
                -v ar="$(val "$a" rss_mib)" -v oe="$(val "$o" ex_per_s)" \
                -v or_="$(val "$o" peak_rss_mb)" -v te="$te" -v tr="$tr_" 'BEGIN {
                sp = ae / oe
                printf "%-5s %-7s %-13s | %8.1f %8.0f | %8.1f %8.0f | %8s %8s | %5.2fx %5.2fx %s\n",
                    m, s, o, ae, ar, oe, or_, te, tr, sp, ar / or_, (sp >= 1.3 ? "met" : "MISSED") }'
        done
    done
    echo "(best of $repeat, af, PyTorch and ONNX Runtime alternating; ORT picks its own kernels)"
fi

case " $modes " in *" infer_adapter "*)
    # the same base rounded to F16 as checkpoints ship: af keeps it 16-bit (bert_load_16)
    echo
    echo "## inference from an F16 copy of the base, one adapter: af's peak RSS against PyTorch's (F32)"
    printf '%-5s %-7s | %8s %8s | %8s | %6s %s\n' model shape "af ex/s" "RSS MiB" "pt RSS" RSS \
        "(target 0.30x)"
    for model in $models; do
        r=0
        while [ $r -lt "$repeat" ]; do measure af "$model" f16-adapter; r=$((r + 1)); done
        a=$tmp/af-$model-f16-adapter t=$tmp/torch-$model-infer_adapter
        [ -f "$a" ] && [ -f "$t" ] || continue
        if [ "$model" = mini ]; then shape=32x64; else shape=16x128; fi
        awk -v m="$model" -v s="$shape" -v ae="$(val "$a" ex_per_s)" -v ar="$(val "$a" rss_mib)" \
            -v tr="$(val "$t" rss_mib)" 'BEGIN {
            printf "%-5s %-7s | %8.1f %8.0f | %8.0f | %5.2fx %s\n", m, s, ae, ar, tr, ar / tr,
                (ar / tr <= 0.30 ? "met" : "MISSED") }'
    done
    ;;
esac

if [ $sst2 = 1 ]; then
    echo
    echo "## real data: one epoch of adapter training on SST-2 train, mini, length-bucketed batches"
    AF_BENCH=$dir BENCH_PYTHON=$py BENCH_TORCH=$torch "$top/scripts/bench-sst2.sh" || true
fi

if [ $tok = 1 ]; then
    echo
    echo "## tokenizer"
    "$top/scripts/bench-tokenize.sh" || true
fi

if [ $pre = 1 ] && [ -x "$dir/bench-pretrain" ]; then
    echo
    echo "## pretraining: af-pretrain's step (encoder + MLM head forward and backward, AdamW)"
    "$dir/bench-pretrain" --threads "$threads" --steps "${steps:-5}"
fi

if [ $encoder = 1 ] && [ -x "$dir/bench-encoder" ]; then
    echo
    echo "## encoder phases (BERT, batch 32, sequence 128; GFLOP/s counts matrix products only)"
    "$dir/bench-encoder" --threads "$threads"
fi

if [ $arch = 1 ]; then
    echo
    AF_BENCH=$dir BENCH_PYTHON=$py BENCH_THREADS=$threads "$top/scripts/bench-arch.sh" \
        ${steps:+--steps "$steps"} || true
fi
