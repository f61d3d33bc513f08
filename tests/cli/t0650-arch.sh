#!/bin/sh
# RoBERTa and DistilBERT bases through the programs: af-infer against PyTorch (adapters, attention
# and gating fusion, on F32 and F16/BF16 checkpoints; scripts/gen-arch-fixtures.py), training and fusing on them, inspection, and
# the refusal of a file trained on another architecture.
. "$(dirname "$0")/lib.sh"

for A in roberta distilbert; do
	BASE=$FIXTURES/arch/$A/f32
	IN=$FIXTURES/arch/$A/infer
	TR=$FIXTURES/arch/$A/train

	if [ $A = roberta ]; then H=f16; else H=bf16; fi
	for K in f32 $H; do
		B=$FIXTURES/arch/$A/$K I=$IN
		[ $K = f32 ] || I=$IN-$K
		test_expect_success "$A ($K base): adapters and fusions predict what PyTorch does" '
			for c in a b; do
				af-infer --base "$B" --adapter "$I/$c.safetensors" --batch-size 4 "$I/in.jsonl" >out &&
				numbers out >got && numbers_close "$I/$c.expected" got || return 1
			done &&
			af-infer --base "$B" --adapter "$I/a.safetensors" --adapter "$I/b.safetensors" \
				--fusion "$I/ab.safetensors" --fusion-weights --batch-size 4 "$I/in.jsonl" >out &&
			numbers out >got && numbers_close "$I/ab.expected" got &&
			af-infer --base "$B" --adapter "$I/c.safetensors" --adapter "$I/d.safetensors" \
				--fusion "$I/cd.safetensors" --fusion-weights "$I/in.jsonl" >out &&
			numbers out >got && numbers_close "$I/cd.expected" got
		'
	done

	test_expect_success "$A: a BERT adapter is refused, saying so" '
		test_exit 1 af-infer --base "$BASE" --adapter "$FIXTURES/infer/a.safetensors" \
			"$IN/in.jsonl" >out 2>err &&
		test_grep "trained on a BERT base, but .* is a .* base (model_type '"$A"')" err &&
		test_exit 1 af-infer --base "$FIXTURES/encoder/f32" --adapter "$IN/a.safetensors" \
			"$IN/in.jsonl" >out 2>err &&
		test_grep "base, but .* is a BERT base (model_type bert)" err
	'

	test_expect_success "$A: train an adapter, fuse, infer, inspect" '
		af-train-adapter --base "$TR/base" --name new --labels neg,neu,pos --epochs 2 --quiet \
			-o new.safetensors "$TR/cls.jsonl" &&
		af-inspect --json new.safetensors >insp &&
		test_grep "\"'"$A"'\.[a-z]*\.layer\.1\.[a-z_.]*adapters\.new\.adapter_up\.weight\"" insp &&
		af-fuse --base "$TR/base" --adapter "$TR/adapters/srca.safetensors" \
			--adapter "$TR/adapters/srcb.safetensors" --name t --method weighted --epochs 1 \
			--quiet -o f.safetensors "$TR/cls.jsonl" &&
		af-inspect f.safetensors >heat &&
		test_grep "^weighted fusion srca,srcb" heat && test_grep "^1 " heat &&
		af-infer --base "$TR/base" --adapter "$TR/adapters/srca.safetensors" \
			--adapter "$TR/adapters/srcb.safetensors" --fusion f.safetensors "$TR/cls.jsonl" >pred &&
		test $(wc -l <pred) -eq 6
	'
done

test_done
