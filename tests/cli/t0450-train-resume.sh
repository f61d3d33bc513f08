#!/bin/sh
# --resume against another configuration (issue 19.1): af-train-adapter, af-fuse and af-pretrain
# record every option that changes the result, the base, the adapters, the labels and digests of
# the training and dev data in the checkpoint, and refuse a run that differs, naming what differs
# and both values; what only changes how the run is carried out (--threads, --log, --quiet) may
# differ.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base
DATA=$TEST_ROOT/data
mkdir -p "$DATA"
gen_separable 1 256 >"$DATA/train.jsonl"
gen_separable 101 128 >"$DATA/dev.jsonl"
gen_separable 7919 2000 >"$DATA/big.jsonl"
gen_separable 7 2000 >"$DATA/other.jsonl"
sed 's/"pos"/"yes"/' "$DATA/big.jsonl" >"$DATA/relabelled.jsonl"

wait_for() {
	i=0
	while ! test -s "$1" && test $i -lt 300; do
		sleep 0.1
		i=$((i + 1))
	done
	test -s "$1"
}

# A checkpoint: a long run stopped by SIGTERM once it has evaluated once.
LONG="--name t --epochs 20 --batch-size 16 --lr 1e-2 --bottleneck 8 --dev $DATA/dev.jsonl --eval-every 50 -q"
(
	cd "$DATA" || exit 1
	# a simple command in the background, so that $! is the program under any sh
	af-train-adapter --base "$BASE" --threads 1 $LONG --log log.jsonl -o out.st big.jsonl 2>err &
	pid=$!
	wait_for log.jsonl && kill -TERM $pid
	wait $pid
	test -s "$DATA/out.st.ckpt"
) || echo "# setup failed: no checkpoint"

# resume_refused 'WHAT DIFFERS' OPTIONS...: the checkpoint is refused, with both values named.
resume_refused() {
	differs=$1
	shift
	cp "$DATA/out.st.ckpt" c.ckpt &&
	test_exit 1 af-train-adapter --base "$BASE" --threads 1 --resume c.ckpt -o out.st "$@" 2>err &&
	test_grep "c.ckpt: a checkpoint of another run: $differs" err &&
	test_grep "only --threads, --log, --quiet" err &&
	! test -e out.st && cmp c.ckpt "$DATA/out.st.ckpt" && echo "refused: $differs"
}

test_expect_success 'af-train-adapter: each option that changes the result is checked' '
	resume_refused "--lr is 0.01 there, 0.001 here" $LONG --lr 1e-3 "$DATA/big.jsonl" &&
	resume_refused "--seed is \"42\" there, \"7\" here" $LONG --seed 7 "$DATA/big.jsonl" &&
	resume_refused "--batch-size is 16 there, 8 here" $LONG --batch-size 8 "$DATA/big.jsonl" &&
	resume_refused "--epochs is 20 there, 21 here" $LONG --epochs 21 "$DATA/big.jsonl" &&
	resume_refused "--max-len is 16 there, 8 here" $LONG --max-len 8 "$DATA/big.jsonl" &&
	resume_refused "--dropout is -1 there, 0 here" $LONG --dropout 0 "$DATA/big.jsonl" &&
	resume_refused "--warmup-ratio is 0 there, 0.1 here" $LONG --warmup-ratio 0.1 "$DATA/big.jsonl" &&
	resume_refused "--patience is 0 there, 3 here" $LONG --patience 3 "$DATA/big.jsonl"
'
test_expect_success 'af-train-adapter: other training data, dev data, labels or base are refused' '
	resume_refused "training data (sha256 of its examples) is \"[0-9a-f]*\" there, \"[0-9a-f]*\" here" \
		$LONG "$DATA/other.jsonl" &&
	resume_refused "--dev (sha256 of its examples) is" $LONG --dev "$DATA/train.jsonl" "$DATA/big.jsonl" &&
	resume_refused "heads.t is \[\"neg\",\"pos\"\] there, \[\"neg\",\"yes\"\] here" \
		$LONG --dev "$DATA/relabelled.jsonl" "$DATA/relabelled.jsonl" &&
	mkdir other && cp "$BASE/config.json" "$BASE/model.safetensors" other/ &&
	size=$(wc -c <other/model.safetensors) &&
	printf "\077" | dd of=other/model.safetensors bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null &&
	cp "$DATA/out.st.ckpt" c.ckpt &&
	test_exit 1 af-train-adapter --base other --threads 1 --resume c.ckpt -o out.st $LONG \
		"$DATA/big.jsonl" 2>err &&
	test_grep "a checkpoint of another run: base" err
'
test_expect_success 'af-train-adapter: --threads, --log and --quiet may change; the run ends' '
	cp "$DATA/out.st.ckpt" c.ckpt &&
	af-train-adapter --base "$BASE" --threads 2 $LONG --log other.log --resume c.ckpt -o out.st \
		"$DATA/big.jsonl" &&
	test -s out.st && test -s other.log
'
test_expect_success 'a checkpoint without a run record (an older af) is refused, saying why' '
	python3 - "$DATA/out.st.ckpt" c.ckpt <<-PY &&
	import json, struct, sys
	b = open(sys.argv[1], "rb").read()
	n = struct.unpack("<Q", b[:8])[0]
	h = json.loads(b[8:8 + n])
	del h["__metadata__"]["run"]
	s = json.dumps(h).encode()
	s += b" " * (-len(s) % 8)
	open(sys.argv[2], "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
	PY
	test_exit 1 af-train-adapter --base "$BASE" --threads 1 --resume c.ckpt -o out.st $LONG \
		"$DATA/big.jsonl" 2>err &&
	test_grep "no record of its run" err
'

# af-fuse: two small adapters, a fusion checkpoint, then another adapter file of the same name
# and --temperature-anneal.
(
	cd "$DATA" &&
	src="--base $BASE --threads 1 --epochs 1 --batch-size 16 --bottleneck 8 -q" &&
	af-train-adapter $src --name a -o a.st train.jsonl &&
	af-train-adapter $src --name b -o b.st --seed 3 train.jsonl &&
	af-train-adapter $src --name a -o a2.st --seed 9 train.jsonl
) || echo "# setup failed: no adapters"
FUSE="--base $BASE --threads 1 --name f --epochs 20 --batch-size 16 --lr 1e-2 --dev $DATA/dev.jsonl --eval-every 50 -q"

test_expect_success 'af-fuse: another adapter file of the same name, or --temperature-anneal, is refused' '
	{ af-fuse $FUSE --adapter "$DATA/a.st" --adapter "$DATA/b.st" --log log.jsonl -o f.st \
		"$DATA/big.jsonl" 2>err & } &&
	pid=$! && wait_for log.jsonl && kill -TERM $pid && test_exit 143 wait $pid &&
	test -s f.st.ckpt && cp f.st.ckpt keep.ckpt &&
	test_exit 1 af-fuse $FUSE --adapter "$DATA/a2.st" --adapter "$DATA/b.st" --resume f.st.ckpt \
		-o f.st "$DATA/big.jsonl" 2>err &&
	test_grep "f.st.ckpt: a checkpoint of another run: adapters" err &&
	test_exit 1 af-fuse $FUSE --adapter "$DATA/a.st" --adapter "$DATA/b.st" --temperature-anneal \
		--resume f.st.ckpt -o f.st "$DATA/big.jsonl" 2>err &&
	test_grep "config.temperature_anneal is false there, true here" err &&
	cmp f.st.ckpt keep.ckpt &&
	af-fuse $FUSE --adapter "$DATA/a.st" --adapter "$DATA/b.st" --threads 2 --resume f.st.ckpt \
		-o f.st "$DATA/big.jsonl" && test -s f.st
'

# af-pretrain: a checkpoint with --save-every, then other options or another corpus.
awk 'BEGIN { srand(3); for (i = 0; i < 200; i++) print "the cat sat on the mat and the dog ran " int(rand() * 9) }' >"$DATA/c.txt"
awk 'BEGIN { srand(4); for (i = 0; i < 200; i++) print "the dog sat on the log and the cat ran " int(rand() * 9) }' >"$DATA/d.txt"
cat "$DATA/c.txt" "$DATA/d.txt" | af-tokenize --build-vocab 60 -q -o "$DATA/vocab.txt"
PT="--layers 1 --hidden 16 --heads 2 --ffn 32 --vocab $DATA/vocab.txt --max-len 16 --batch-size 4 --threads 1 -q --steps 6"

test_expect_success 'af-pretrain: other options or another corpus are refused, naming them' '
	af-pretrain $PT --save-every 3 -o m "$DATA/c.txt" && test -d m.ckpt &&
	test_exit 1 af-pretrain $PT --lr 1e-3 --resume --checkpoint m.ckpt -o m2 "$DATA/c.txt" 2>err &&
	test_grep "m.ckpt/trainer.safetensors: a checkpoint of another run: --lr is 0.0001 there, 0.001 here" err &&
	test_exit 1 af-pretrain $PT --clip 0.5 --resume --checkpoint m.ckpt -o m2 "$DATA/c.txt" 2>err &&
	test_grep "another run: --clip is 1 there, 0.5 here" err &&
	test_exit 1 af-pretrain $PT --resume --checkpoint m.ckpt -o m2 "$DATA/d.txt" 2>err &&
	test_grep "another run: corpus (sha256 of its sequences)" err &&
	af-pretrain $PT --threads 2 --resume --checkpoint m.ckpt -o m2 "$DATA/c.txt" &&
	cmp m/model.safetensors m2/model.safetensors
'
test_done
