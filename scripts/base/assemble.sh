#!/bin/sh
# assemble.sh: af's embedded base as a Hugging Face directory, from the parts committed here.
#
# usage: scripts/base/assemble.sh OUTDIR
#
# model.safetensors is committed in parts of under 4 MiB (the repository keeps no large files);
# this joins them, checks every file against SHA256SUMS, and writes OUTDIR atomically (a
# temporary directory renamed into place). The base was built by `make base`
# (scripts/make-base.sh); README.txt here has its training record.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
if [ -s "$out/model.safetensors" ] && (cd "$out" && sha256sum --quiet -c "$here/SHA256SUMS") 2>/dev/null; then
    echo "$out"
    exit 0
fi
tmp=$out.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp"
cat "$here"/model.safetensors.part-* >"$tmp/model.safetensors"
cp "$here/config.json" "$here/vocab.txt" "$here/tokenizer_config.json" "$tmp/"
if ! (cd "$tmp" && sha256sum --quiet -c "$here/SHA256SUMS"); then
    rm -rf "$tmp"
    echo "$0: the assembled base does not match SHA256SUMS" >&2
    exit 1
fi
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
