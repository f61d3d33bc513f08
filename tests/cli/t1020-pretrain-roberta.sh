#!/bin/sh
# af-pretrain on RoBERTa (issue 17): a random RobertaForMaskedLM with its own byte-level BPE
# (tests/fixtures/pretrain-roberta/base, made by scripts/gen-roberta-base.py with Hugging Face's
# classes) continued on text tokenized as RobertaTokenizer does; the output directory (roberta.*
# and lm_head.* names, vocab.json, merges.txt, RobertaTokenizer config) reloads in af and, where
# Debian's python3 has torch and AdapterHub's sources are at AF_HUB_SRC (default /work/hub-src),
# in Hugging Face's RobertaForMaskedLM and RobertaTokenizer; a new RoBERTa from vocab.json +
# merges.txt; the loss falls on a repeated batch; --whole-word, JSONL input and --resume.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/pretrain-roberta/base
D=$TEST_ROOT/data
mkdir -p "$D"
# the words gen-roberta-base.py trained its merges on, in t1000's phrases
awk 'BEGIN {
	srand(7)
	split("cat dog bird fox horse mouse owl frog", a, " ")
	split("red blue green small big old young quick", b, " ")
	split("sat ran jumped slept walked swam flew hid", c, " ")
	split("mat log tree rock hill pond barn wall", d, " ")
	for (i = 0; i < 300; i++) {
		s = ""
		n = 2 + int(rand() * 3)
		for (j = 0; j < n; j++) {
			k = 1 + int(rand() * 8)
			s = s sprintf("the %s %s %s on the %s . ", b[k], a[k], c[k], d[1 + int(rand() * 8)])
		}
		print s > (i < 270 ? "'"$D"'/train.txt" : "'"$D"'/dev.txt")
	}
}'
RUN="--max-len 32 --batch-size 8 --threads 1 -q"

test_expect_success 'continued from a RoBERTa with BPE: a RobertaForMaskedLM directory' '
	af-pretrain --base "$BASE" $RUN --steps 4 -o m "$D/train.txt" &&
	cmp m/vocab.json "$BASE/vocab.json" && cmp m/merges.txt "$BASE/merges.txt" &&
	test ! -e m/vocab.txt &&
	test_grep "RobertaTokenizer" m/tokenizer_config.json &&
	test_grep "\"add_prefix_space\": false" m/tokenizer_config.json &&
	test_grep "\"model_max_length\": 64" m/tokenizer_config.json &&
	test_grep "RobertaForMaskedLM" m/config.json &&
	test_grep "\"model_type\":[[:space:]]*\"roberta\"" m/config.json &&
	test_grep "\"max_position_embeddings\":[[:space:]]*66" m/config.json &&
	head -c 12000 m/model.safetensors >hdr &&
	for t in roberta.embeddings.word_embeddings.weight \
		roberta.encoder.layer.1.output.LayerNorm.bias lm_head.dense.weight \
		lm_head.layer_norm.weight lm_head.bias training; do
		grep -q -a "\"$t\"" hdr || { echo "no $t"; exit 1; }
	done &&
	! grep -q -a -e "cls.predictions" -e "lm_head.decoder" -e "\"bert\." hdr
'
test_expect_success 'the output reloads: af-pretrain continues it, af-tokenize reads its BPE' '
	af-pretrain --base "$BASE" $RUN --steps 2 -o m "$D/train.txt" &&
	af-pretrain --base m $RUN --steps 2 -o m2 "$D/train.txt" &&
	af-tokenize --model "$BASE" --max-len 0 --text 1 --tsv "$D/dev.txt" >a.jsonl &&
	af-tokenize --model m2 --max-len 0 --text 1 --tsv "$D/dev.txt" >b.jsonl &&
	cmp a.jsonl b.jsonl &&
	test_grep "^{\"input_ids\":\[0,[0-9,]*,2\]" a.jsonl
'
# Where PyTorch and AdapterHub's sources are (not in CI), Hugging Face loads the directory.
HUB=${AF_HUB_SRC:-/work/hub-src}
if [ -x /usr/bin/python3 ] && [ -d "$HUB/transformers" ] &&
	/usr/bin/python3 -c "import torch, regex" 2>/dev/null; then
	test_expect_success 'Hugging Face: RobertaForMaskedLM loads it, nothing missing; RobertaTokenizer = af' '
		af-pretrain --base "$BASE" $RUN --steps 3 -o m "$D/train.txt" &&
		af-tokenize --model m --max-len 0 --text 1 --tsv "$D/dev.txt" >dev.jsonl &&
		/usr/bin/python3 "$AF_TOP/scripts/gen-roberta-base.py" "$HUB" --check m "$D/dev.txt" \
			dev.jsonl >out 2>&1; st=$?; cat out; test $st -eq 0 &&
		test_grep "^0 failed" out
	'
else
	echo "# skipped the Hugging Face check: no /usr/bin/python3 with torch, or no $HUB"
fi
test_expect_success 'a new RoBERTa from vocab.json + merges.txt' '
	af-pretrain --vocab "$BASE/vocab.json" --merges "$BASE/merges.txt" --layers 1 --hidden 16 \
		--heads 2 --ffn 32 --max-pos 40 $RUN --steps 2 -o n "$D/train.txt" &&
	test_grep "\"model_type\":[[:space:]]*\"roberta\"" n/config.json &&
	test_grep "\"max_position_embeddings\":[[:space:]]*42" n/config.json &&
	test_grep "\"type_vocab_size\":[[:space:]]*1" n/config.json &&
	test_grep "\"pad_token_id\":[[:space:]]*1" n/config.json &&
	test_grep "\"model_max_length\": 40" n/tokenizer_config.json &&
	cmp n/merges.txt "$BASE/merges.txt" &&
	af-pretrain --base n $RUN --max-len 40 --steps 1 -o n2 "$D/train.txt" &&
	test_exit 2 af-pretrain --base n $RUN --max-len 41 --steps 1 -o n3 "$D/train.txt" 2>err &&
	test_grep "40 tokens" err
'
test_expect_success 'usage: --merges needs --vocab, a .json --vocab needs --merges' '
	test_exit 2 af-pretrain --base "$BASE" --merges "$BASE/merges.txt" -o x "$D/train.txt" 2>err &&
	test_grep "\-\-merges needs \-\-vocab" err &&
	test_exit 2 af-pretrain --vocab "$BASE/vocab.json" --layers 1 --hidden 16 --heads 2 \
		--ffn 32 -o x "$D/train.txt" 2>err &&
	test_grep "needs \-\-merges" err &&
	test_exit 1 af-pretrain --base "$BASE" --vocab "$BASE/vocab.json" --merges /nonexistent $RUN \
		--steps 1 -o x "$D/train.txt" 2>err && test_grep "/nonexistent" err &&
	test ! -e x
'
test_expect_success 'the loss is finite and falls on a repeated batch (fixed masks)' '
	head -n 12 "$D/train.txt" >few.txt &&
	af-pretrain --base "$BASE" --max-len 32 --batch-size 1 --threads 1 --steps 1 -o s few.txt \
		2>err && n=$(sed -n "s/.* \([0-9]*\) sequences of 32.*/\1/p" err) && echo "$n sequences" &&
	af-pretrain --base "$BASE" --max-len 32 --batch-size "$n" --threads 1 -q \
		--lr 1e-2 --warmup-ratio 0 --steps 15 --eval-every 1 --dev few.txt --log log.jsonl \
		-o r few.txt &&
	sed -n "s/.*\"dev_loss\":\([^,]*\),.*/\1/p" log.jsonl >loss &&
	cat loss | tr "\n" " " && test "$(wc -l <loss)" -eq 15 &&
	awk "!(\$1 + 0 == \$1 && \$1 > 0 && \$1 < 100) { bad = 1 } NR == 1 { f = \$1 } { l = \$1 }
		END { exit bad || !(l < 0.85 * f) }" loss
'
test_expect_success '--whole-word on BPE words; the same seed, the same bytes' '
	af-pretrain --base "$BASE" $RUN --steps 3 --whole-word -o a "$D/train.txt" &&
	af-pretrain --base "$BASE" $RUN --steps 3 --whole-word -o b "$D/train.txt" &&
	cmp a/model.safetensors b/model.safetensors &&
	af-pretrain --base "$BASE" $RUN --steps 3 -o c "$D/train.txt" &&
	! cmp -s a/model.safetensors c/model.safetensors
'
test_expect_success 'tokenized JSONL (<s> ... </s>) trains the same model as the raw text' '
	af-tokenize --model "$BASE" --max-len 0 --text 1 --tsv "$D/train.txt" >train.jsonl &&
	af-pretrain --base "$BASE" $RUN --steps 3 -o a "$D/train.txt" &&
	af-pretrain --base "$BASE" $RUN --steps 3 -o b train.jsonl &&
	cmp a/model.safetensors b/model.safetensors
'
test_expect_success 'resume from a checkpoint gives the same model as an uninterrupted run' '
	af-pretrain --base "$BASE" $RUN --steps 8 -o a "$D/train.txt" &&
	af-pretrain --base "$BASE" $RUN --steps 8 --save-every 5 -o b "$D/train.txt" &&
	cmp a/model.safetensors b/model.safetensors &&
	cmp b.ckpt/merges.txt "$BASE/merges.txt" &&
	af-pretrain --base "$BASE" $RUN --steps 8 --resume --checkpoint b.ckpt -o c "$D/train.txt" &&
	cmp a/model.safetensors c/model.safetensors &&
	printf "#version: 0.2\n" >m.txt && sed 1d "$BASE/merges.txt" | sed 1d >>m.txt &&
	test_exit 1 af-pretrain --base "$BASE" --vocab "$BASE/vocab.json" --merges m.txt $RUN \
		--steps 8 --resume --checkpoint b.ckpt -o d "$D/train.txt" 2>err &&
	test_grep "another run" err
'
# DistilBERT's MLM head (vocab_transform, vocab_layer_norm, vocab_projector) with WordPiece:
# tests/fixtures/arch/distilbert/mlm's DistilBertForMaskedLM (its 40 ids given a vocab.txt here)
test_expect_success 'continued from a DistilBertForMaskedLM: its head loaded and written' '
	DB=$FIXTURES/arch/distilbert/mlm/model &&
	{ printf "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n" && for w in the red blue green small big \
		old young quick cat dog bird fox horse mouse owl frog sat ran jumped slept walked swam \
		flew hid on mat log tree rock hill pond barn wall . ; do echo $w; done; } >vocab.txt &&
	test "$(wc -l <vocab.txt)" -eq 40 &&
	af-pretrain --base "$DB" --vocab vocab.txt --max-len 16 --batch-size 8 --threads 1 -q \
		--steps 2 --lr 0 -o m "$D/train.txt" &&
	test_grep "DistilBertForMaskedLM" m/config.json && cmp m/vocab.txt vocab.txt &&
	head -c 12000 m/model.safetensors >hdr &&
	for t in distilbert.transformer.layer.1.ffn.lin1.weight vocab_transform.weight \
		vocab_layer_norm.bias vocab_projector.bias; do
		grep -q -a "\"$t\"" hdr || { echo "no $t"; exit 1; }
	done &&
	python3 - "$DB/model.safetensors" m/model.safetensors <<-PY
	import json, struct, sys
	def load(p):
	    b = open(p, "rb").read()
	    n = struct.unpack("<Q", b[:8])[0]
	    h = json.loads(b[8:8 + n])
	    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
	            for k, v in h.items() if k.startswith("vocab_")}
	a, b = load(sys.argv[1]), load(sys.argv[2])
	assert len(a) == 5 and a == b, "the head differs from the checkpoint after --lr 0"
	PY
'
test_done
