#!/bin/sh
# Every program refuses (exit 2) an output that is the same file as one of its inputs, whatever
# the spelling (another name, ./, a symbolic or hard link), and two outputs that are one file.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64 (gen-train-fixtures.py)
SRC=$TEST_ROOT/src
mkdir -p "$SRC"
gen_separable 11 64 >"$SRC/a.jsonl"
(
	cd "$SRC" &&
	src="--base $BASE --threads 1 --epochs 1 --batch-size 16 --bottleneck 4 --dropout 0 -q" &&
	af-train-adapter $src --name a -o a.st a.jsonl &&
	af-train-adapter $src --name b -o b.st --seed 3 a.jsonl &&
	af-fuse --base $BASE --adapter a.st --adapter b.st --name f -o f.st --epochs 1 -q a.jsonl
) || echo "# setup failed: adapters missing"

train="af-train-adapter --base $BASE --threads 1 --epochs 1 --name t -q"

# refused: exit 2, a message naming the input, and the file untouched
refused() {
	file=$1
	shift
	cp "$file" before &&
	test_exit 2 "$@" 2>err &&
	test_grep "same file" err &&
	cmp "$file" before
}

test_expect_success 'af-train-adapter -o naming the training data' '
	cp "$SRC/a.jsonl" data.jsonl &&
	refused data.jsonl $train -o data.jsonl data.jsonl &&
	refused data.jsonl $train -o ./data.jsonl data.jsonl &&
	test_grep "the training data" err
'

test_expect_success 'a symbolic link, a hard link and another path to the same file' '
	cp "$SRC/a.jsonl" data.jsonl && ln -s data.jsonl sym && ln data.jsonl hard && mkdir sub &&
	refused data.jsonl $train -o sym data.jsonl &&
	refused data.jsonl $train -o hard data.jsonl &&
	refused data.jsonl $train -o sub/../data.jsonl data.jsonl
'

test_expect_success 'af-train-adapter: --dev, --log and the base as outputs' '
	cp "$SRC/a.jsonl" data.jsonl && cp "$SRC/a.jsonl" dev.jsonl &&
	refused dev.jsonl $train --dev dev.jsonl -o dev.jsonl data.jsonl &&
	test_grep "dev.jsonl is the same file as --dev" err &&
	refused data.jsonl $train --log data.jsonl -o out.st data.jsonl &&
	mkdir base && cp "$BASE"/* base/ &&
	refused base/model.safetensors $train --base base -o base/model.safetensors data.jsonl &&
	refused base/config.json $train --base base -o base/config.json data.jsonl &&
	test_exit 2 $train -o out.st --log out.st data.jsonl 2>err &&
	test_grep "each output needs its own" err &&
	! test -e out.st
'

test_expect_success 'af-fuse -o naming one of its adapters' '
	cp "$SRC/a.st" a1.st && cp "$SRC/b.st" b1.st &&
	refused a1.st af-fuse --base $BASE --adapter a1.st --adapter b1.st --name f -o a1.st \
		"$SRC/a.jsonl" &&
	test_grep "same file as --adapter" err
'

test_expect_success 'af-infer --metrics-json naming an adapter, the fusion or the input' '
	cp "$SRC/a.st" a1.st && cp "$SRC/b.st" b1.st && cp "$SRC/f.st" f1.st &&
	cp "$SRC/a.jsonl" in.jsonl &&
	refused a1.st af-infer --base $BASE --adapter a1.st --metrics-json a1.st in.jsonl &&
	refused f1.st af-infer --base $BASE --adapter a1.st --adapter b1.st --fusion f1.st \
		--metrics-json f1.st in.jsonl &&
	refused in.jsonl af-infer --base $BASE --adapter a1.st --metrics-json in.jsonl in.jsonl &&
	af-infer --base $BASE --adapter a1.st --metrics-json m.json in.jsonl >/dev/null &&
	test -s m.json
'

test_expect_success 'af-tokenize -o naming its input or its vocabulary' '
	printf "hello world\tpos\n" >in.tsv &&
	printf "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n" >vocab.txt &&
	refused in.tsv af-tokenize --vocab vocab.txt --tsv --text 1 -o in.tsv in.tsv &&
	refused vocab.txt af-tokenize --vocab vocab.txt --tsv --text 1 -o vocab.txt in.tsv &&
	af-tokenize --vocab vocab.txt --tsv --text 1 -o out.jsonl in.tsv && test -s out.jsonl
'

test_expect_success 'af-inspect --png naming the file it reads' '
	cp "$SRC/f.st" f1.st &&
	refused f1.st af-inspect --png f1.st f1.st
'

test_expect_success 'af-pretrain -o or --log naming an input' '
	mkdir base && cp "$BASE"/* base/ &&
	printf "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n" >base/vocab.txt &&
	printf "hello world\n" >corpus.txt &&
	refused base/model.safetensors af-pretrain --base base -o base --steps 1 corpus.txt &&
	refused corpus.txt af-pretrain --base base -o out --log corpus.txt --steps 1 corpus.txt
'

test_done
