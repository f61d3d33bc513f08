#!/bin/sh
# What the training programs guard against (issue 19): a diverging run is reported (19.16), and
# two runs writing one output at once are not both let through (19.12).
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base
DATA=$TEST_ROOT/data
mkdir -p "$DATA"
gen_separable 1 256 >"$DATA/train.jsonl"
gen_separable 7919 2000 >"$DATA/big.jsonl"
awk 'BEGIN { srand(3); for (i = 0; i < 300; i++) print "the cat sat on the mat and the dog ran " int(rand() * 9) }' >"$DATA/c.txt"
af-tokenize --build-vocab 60 -q -o "$DATA/vocab.txt" "$DATA/c.txt"
PT="--layers 1 --hidden 16 --heads 2 --ffn 32 --vocab $DATA/vocab.txt --max-len 16 --batch-size 4 --threads 1 --steps 60"
train() {
	af-train-adapter --base "$BASE" --threads 1 --name t --batch-size 16 --bottleneck 8 "$@"
}

test_expect_success '--lr 10 diverges: a warning on stderr, even with -q' '
	train --epochs 1 --lr 10 -q -o a.st "$DATA/big.jsonl" 2>err &&
	test_grep "^af-train-adapter: warning: the training loss grew from 0.69[0-9]* at the first step to [0-9.]*, the mean of steps 2-11: the run is diverging (lower --lr?)" err &&
	test "$(grep -c warning err)" = 1
'
test_expect_success 'a run that learns gets no such warning' '
	train --epochs 3 --lr 1e-2 -q -o a.st "$DATA/train.jsonl" 2>err &&
	! grep -q warning err
'
test_expect_success 'af-pretrain: the same warning when its loss explodes, none at a sane --lr' '
	af-pretrain $PT --lr 10 -q -o m "$DATA/c.txt" 2>err &&
	test_grep "^af-pretrain: warning: the training loss grew from .* the run is diverging" err &&
	af-pretrain $PT --lr 1e-3 -q -o m "$DATA/c.txt" 2>err &&
	! grep -q warning err
'
test_expect_success 'a second af-train-adapter writing the same -o is refused while the first runs' '
	{ af-train-adapter --base "$BASE" --threads 1 --name t --epochs 200 -q -o out.st \
		"$DATA/big.jsonl" 2>err1 & } &&
	pid=$! &&
	i=0 && while ! test -e out.st.lock && test $i -lt 100; do sleep 0.1; i=$((i + 1)); done &&
	test_exit 1 train --epochs 1 -q -o out.st "$DATA/train.jsonl" 2>err &&
	test_grep "^af-train-adapter: out.st: another af program is writing it (process $pid holds out.st.lock)" err &&
	kill -TERM $pid && { wait $pid; st=$?; } ;
	test "$st" = 143 && test -s out.st.ckpt && ! test -e out.st && ! test -e out.st.lock &&
	train --epochs 1 -q -o out.st "$DATA/train.jsonl" && test -s out.st && ! test -e out.st.lock
'
test_done
