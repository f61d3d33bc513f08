#!/bin/sh
# install.sh: puts a base built by `make base` into scripts/base/ for committing: model.safetensors
# split into parts under 4 MiB, config, vocabulary, tokenizer config, SHA256SUMS, README.txt.
# usage: scripts/base/install.sh BASEDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$1
rm -f "$here"/model.safetensors.part-*
split -b 4000000 -d -a 2 "$src/model.safetensors" "$here/model.safetensors.part-"
cp "$src/config.json" "$src/vocab.txt" "$src/tokenizer_config.json" "$here/"
[ -f "$src/README.txt" ] && cp "$src/README.txt" "$here/"
(cd "$src" && sha256sum model.safetensors config.json vocab.txt tokenizer_config.json) >"$here/SHA256SUMS"
ls -l "$here"
