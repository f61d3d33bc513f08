#!/bin/sh
# Data-parallel training under mpirun (issue 18): N ranks take the steps one process takes, so
# the files they write equal a one-process run's. Tolerance 1e-5: the ranks' partial sums are
# added in another order than one process adds them (float32, about 1e-7 relative per step),
# and over these runs' 48-375 steps the largest difference seen is about 1.3e-6.
# Skipped when the programs were built without MPI or mpirun is missing.
. "$(dirname "$0")/lib.sh"

if ! af-train-adapter --version | grep -q "MPI:" || ! command -v mpirun >/dev/null; then
	echo "1..0 # SKIP built without MPI, or no mpirun"
	exit 0
fi
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
# containers often forbid the cross-process memory attach (CMA) Open MPI's shared-memory transport
# tries first; copying through the shared segment works everywhere
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# A machine where Open MPI cannot start two local processes at all (no usable shared memory or
# loopback in some sandboxes) says so and skips: that is the environment, not af. Where two
# processes start, every test below runs.
if ! probe=$(timeout 60 $MPIRUN -np 2 sh -c 'echo started' 2>&1) ||
	[ "$(printf '%s\n' "$probe" | grep -c '^started$')" -ne 2 ]; then
	echo "1..0 # SKIP mpirun cannot start 2 processes here: $(printf '%s' "$probe" | tr '\n' ' ' | cut -c1-200)"
	exit 0
fi

BASE=$FIXTURES/train/base
DATA=$TEST_ROOT/data
mkdir -p "$DATA"
gen_separable 1 256 >"$DATA/train.jsonl"
gen_separable 101 128 >"$DATA/dev.jsonl"
gen_separable 7919 2000 >"$DATA/big.jsonl"

# maxdiff A B: the largest absolute difference of two safetensors files' tensors (same names).
maxdiff() {
	python3 - "$1" "$2" <<-'PY'
	import array, json, struct, sys
	def load(p):
	    b = open(p, "rb").read()
	    n = struct.unpack("<Q", b[:8])[0]
	    h = json.loads(b[8:8 + n])
	    d = {}
	    for k, v in h.items():
	        if k == "__metadata__":
	            continue
	        s, e = v["data_offsets"]
	        a = array.array("f")
	        a.frombytes(b[8 + n + s:8 + n + e])
	        d[k] = a
	    return d
	a, b = load(sys.argv[1]), load(sys.argv[2])
	assert a.keys() == b.keys(), "different tensors"
	print("%.3g" % max(max((abs(x - y) for x, y in zip(a[k], b[k])), default=0) for k in a))
	PY
}
# close A B: maxdiff below 1e-5 (and says how much)
close() {
	d=$(maxdiff "$1" "$2") && echo "max |difference| $d" &&
	python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 1e-5 else 1)" "$d"
}

TA="--base $BASE --threads 1 --name t --epochs 3 --batch-size 16 --lr 1e-2 --bottleneck 8 --dropout 0 --dev $DATA/dev.jsonl -q"

test_expect_success 'mpirun -np 2 af-train-adapter: the adapter of one process, the same predictions' '
	af-train-adapter $TA -o one.st "$DATA/train.jsonl" &&
	$MPIRUN -np 2 af-train-adapter $TA -o two.st "$DATA/train.jsonl" 2>err &&
	close one.st two.st && ! test -e two.st.ckpt && ! test -e two.st.lock &&
	af-infer --base "$BASE" --adapter one.st "$DATA/dev.jsonl" | sed "s/\"probs\":[^]]*]//" >p1 &&
	af-infer --base "$BASE" --adapter two.st "$DATA/dev.jsonl" | sed "s/\"probs\":[^]]*]//" >p2 &&
	cmp p1 p2 && test "$(grep -c warning err)" = 0
'
test_expect_success 'mpirun -np 2 and -np 3 (uneven shares, --temperature-anneal) af-fuse: the fusion of one process' '
	src="--base $BASE --threads 1 --epochs 1 --batch-size 16 --bottleneck 8 -q" &&
	af-train-adapter $src --name a -o a.st "$DATA/train.jsonl" &&
	af-train-adapter $src --name b --seed 3 -o b.st "$DATA/train.jsonl" &&
	F="--base $BASE --threads 1 --adapter a.st --adapter b.st --name f --epochs 3 --lr 1e-2 --dropout 0 -q" &&
	af-fuse $F --batch-size 16 -o f1.st "$DATA/train.jsonl" &&
	$MPIRUN -np 2 af-fuse $F --batch-size 16 -o f2.st "$DATA/train.jsonl" &&
	close f1.st f2.st &&
	af-fuse $F --batch-size 5 --temperature-anneal -o g1.st "$DATA/train.jsonl" &&
	$MPIRUN -np 3 af-fuse $F --batch-size 5 --temperature-anneal -o g3.st "$DATA/train.jsonl" &&
	close g1.st g3.st
'
awk 'BEGIN { srand(3); for (i = 0; i < 300; i++) print "the cat sat on the mat and the dog ran " int(rand() * 9) }' >"$DATA/c.txt"
af-tokenize --build-vocab 60 -q -o "$DATA/vocab.txt" "$DATA/c.txt"
PT="--layers 1 --hidden 16 --heads 2 --ffn 32 --vocab $DATA/vocab.txt --max-len 16 --batch-size 8 --accumulate 2 --threads 1 -q --steps 20 --dropout 0"

test_expect_success 'mpirun -np 2 --drop-layers 1: each rank caches its rows; one process'"'"'s adapter' '
	af-train-adapter $TA --drop-layers 1 -o one.st "$DATA/train.jsonl" &&
	$MPIRUN -np 2 af-train-adapter $TA --drop-layers 1 -o two.st "$DATA/train.jsonl" &&
	$MPIRUN -np 2 af-train-adapter $TA --drop-layers 1 --no-cache -o none.st \
		"$DATA/train.jsonl" &&
	close one.st two.st && close none.st two.st
'

test_expect_success 'mpirun -np 2 af-pretrain: the model of one process (loss over the global masked count)' '
	af-pretrain $PT -o m1 "$DATA/c.txt" &&
	$MPIRUN -np 2 af-pretrain $PT -o m2 "$DATA/c.txt" &&
	close m1/model.safetensors m2/model.safetensors && test "$(ls)" = "m1
m2"
'
# RoBERTa with byte-level BPE (t1020's base): positions counted per row, <s> </s> framing. Its
# config's dropout (0.1, which --dropout does not override for a base) set to 0: each rank drops
# out by its own stream, so only without dropout do N ranks equal one process.
mkdir -p "$DATA/rb" && cp "$FIXTURES"/pretrain-roberta/base/* "$DATA/rb" &&
	sed -i "s/\"\(hidden\|attention_probs\)_dropout_prob\": 0.1/\"\1_dropout_prob\": 0.0/" "$DATA/rb/config.json"
PR="--base $DATA/rb --max-len 16 --batch-size 8 --accumulate 2 --threads 1 -q --steps 10"
test_expect_success 'mpirun -np 2 af-pretrain on a RoBERTa with BPE: the model of one process' '
	af-pretrain $PR -o r1 "$DATA/c.txt" &&
	$MPIRUN -np 2 af-pretrain $PR -o r2 "$DATA/c.txt" &&
	grep -q "\"hidden_dropout_prob\": 0.0" "$DATA/rb/config.json" &&
	close r1/model.safetensors r2/model.safetensors && cmp r1/merges.txt r2/merges.txt
'
test_expect_success 'under mpirun standard input is refused: pass the file' '
	test_exit 2 $MPIRUN -np 2 af-train-adapter $TA -o x.st <"$DATA/train.jsonl" 2>err &&
	test_grep "standard input reaches rank 0 only" err && ! test -e x.st
'
test_expect_success 'a rank that fails stops every rank (no hang)' '
	test_exit 1 timeout 60 $MPIRUN -np 2 af-train-adapter $TA --log /nonexistent/log -o x.st \
		"$DATA/train.jsonl" 2>err &&
	test_grep "/nonexistent/log" err && ! test -e x.st
'
# A Ctrl-C that reaches rank 0 before step 20 (AF_TEST_INTERRUPT_AT, loop.c) of 48: every rank
# stops there; the checkpoint resumed by 3 ranks, or by one process, ends as one process would.
test_expect_success 'interrupted under mpirun -np 2, resumed by 3 ranks or by one process: the one-process result' '
	af-train-adapter $TA -o full.st "$DATA/train.jsonl" &&
	AF_TEST_INTERRUPT_AT=20 test_exit 130 $MPIRUN -np 2 af-train-adapter $TA -o out.st \
		"$DATA/train.jsonl" 2>err &&
	test_grep "interrupted; checkpoint written to out.st.ckpt" err &&
	test -s out.st.ckpt && ! test -e out.st && cp out.st.ckpt keep.ckpt &&
	$MPIRUN -np 3 af-train-adapter $TA --resume out.st.ckpt -o out.st "$DATA/train.jsonl" &&
	close full.st out.st && ! test -e out.st.ckpt &&
	af-train-adapter $TA --resume keep.ckpt -o one.st "$DATA/train.jsonl" &&
	close full.st one.st
'
# With dropout each rank draws its rows' masks from its own stream, and the model's generator moves
# on alike on every rank, so rank 0's checkpoint resumes every rank exactly.
test_expect_success 'with dropout: interrupted and resumed under -np 2, the uninterrupted -np 2 run' '
	D="$(echo "$TA" | sed "s/--dropout 0/--dropout 0.1/")" &&
	$MPIRUN -np 2 af-train-adapter $D -o full.st "$DATA/train.jsonl" &&
	AF_TEST_INTERRUPT_AT=20 test_exit 130 $MPIRUN -np 2 af-train-adapter $D -o out.st \
		"$DATA/train.jsonl" 2>err &&
	$MPIRUN -np 2 af-train-adapter $D --resume out.st.ckpt -o out.st "$DATA/train.jsonl" &&
	close full.st out.st &&
	af-train-adapter $D -o one.st "$DATA/train.jsonl" && ! close full.st one.st >/dev/null
'
# Ctrl-C typed at mpirun (SIGINT to mpirun, which forwards it): the ranks agree on a step, rank 0
# writes the checkpoint, nothing else is left, and one process resumes it from that step (and is
# stopped 50 steps later, by AF_TEST_INTERRUPT_AT: the run itself is long enough to be sure
# that the Ctrl-C lands in it, whatever the machine's speed).
LONG="--base $BASE --threads 1 --name t --epochs 100000 --batch-size 16 --lr 1e-3 --bottleneck 8 --dropout 0 -q"
ckpt_step() {
	python3 - "$1" <<-'PY'
	import json, struct, sys
	b = open(sys.argv[1], "rb").read()
	n = struct.unpack("<Q", b[:8])[0]
	print(json.loads(json.loads(b[8:8 + n])["__metadata__"]["resume"])["step"])
	PY
}
test_expect_success 'Ctrl-C at mpirun: every rank stops, a checkpoint, no output; one process resumes it' '
	{ $MPIRUN -np 2 af-train-adapter $LONG -o out.st "$DATA/big.jsonl" 2>err & } &&
	pid=$! &&
	i=0 && while ! test -e out.st.lock && test $i -lt 300; do sleep 0.1; i=$((i + 1)); done &&
	sleep 0.5 && kill -INT $pid && { wait $pid; st=$?; } ;
	echo "mpirun exited $st" && test "$st" != 0 &&
	test_grep "interrupted; checkpoint written to out.st.ckpt" err &&
	test -s out.st.ckpt && ! test -e out.st && test -z "$(ls | grep -e tmp -e lock)" &&
	s=$(ckpt_step out.st.ckpt) && echo "checkpoint at step $s" && test "$s" -gt 0 &&
	AF_TEST_INTERRUPT_AT=$((s + 50)) test_exit 130 af-train-adapter $LONG --resume out.st.ckpt \
		-o out.st "$DATA/big.jsonl" 2>err &&
	test "$(ckpt_step out.st.ckpt)" = $((s + 50))
'
test_done
