#!/bin/sh
# af-train-adapter: options, input errors, the file it writes, determinism, learning, --log,
# --patience, Ctrl-C/SIGTERM checkpoints and --resume.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64, 16 positions (gen-train-fixtures.py)
DATA=$TEST_ROOT/data
mkdir -p "$DATA"

gen_separable 1 256 >"$DATA/train.jsonl"
gen_separable 101 128 >"$DATA/dev.jsonl"
gen_separable 7919 2000 >"$DATA/big.jsonl"

# Everything after a safetensors header: the tensors' bytes.
st_data() {
	python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[8 + struct.unpack("<Q", b[:8])[0]:])' "$1"
}

# One metadata value of a file, via af-inspect --json ("training.steps" reaches into JSON).
meta() {
	af-inspect --json "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)["files"][0]["metadata"]
for k in sys.argv[1].split("."):
    v = v[k]
print(json.dumps(v) if not isinstance(v, str) else v)' "$2"
}

# Waits (up to 30 s) until a file is not empty.
wait_for() {
	i=0
	while ! test -s "$1" && test $i -lt 300; do
		sleep 0.1
		i=$((i + 1))
	done
	test -s "$1"
}

train() {
	af-train-adapter --base "$BASE" --threads 1 "$@"
}

test_expect_success '--help lists every option; --version' '
	af-train-adapter --help >out 2>err &&
	! test -s err &&
	for o in --base --name --output --arch --head-only --reduction-factor --bottleneck --non-linearity \
		--dev --labels --task --regression --max-len --epochs --max-steps --lr --batch-size \
		--eval-batch-size --weight-decay --adam-beta1 --adam-beta2 --adam-eps --warmup-ratio \
		--max-grad-norm --dropout --seed --eval-every --metric --patience --log --checkpoint \
		--resume --threads --quiet --help --version; do
		grep -q -e "$o" out || { echo "$o missing from --help" && exit 1; }
	done &&
	af-train-adapter --version >out &&
	test_grep "^af-train-adapter [0-9]" out
'

test_expect_success 'usage errors exit 2 and say what is wrong' '
	test_exit 2 af-train-adapter --bogus 2>err && test_grep "unrecognized option .--bogus." err &&
	test "$(wc -l <err)" -eq 2 &&
	test_exit 2 af-train-adapter --name t -o x 2>err && test_grep "\-\-base DIR is required" err &&
	test_exit 2 train -o x 2>err && test_grep "\-\-name NAME is required" err &&
	test_exit 2 train --name t 2>err && test_grep "\-o FILE is required" err &&
	test_exit 2 train --name t -o x --epochs 0 2>err &&
	test_grep "\-\-epochs: .0. is not an integer in \[1, " err &&
	test_exit 2 train --name t -o x --lr -1 2>err && test_grep "\-\-lr: .-1. is not a number" err &&
	test_exit 2 train --name t -o x --batch-size x 2>err && test_grep "\-\-batch-size: .x." err &&
	test_exit 2 train --name t -o x --arch lora 2>err &&
	test_grep "\-\-arch: .lora. is not pfeiffer or houlsby" err &&
	test_exit 2 train --name t -o x --non-linearity sigmoid 2>err &&
	test_grep "\-\-non-linearity: .sigmoid. is not relu, gelu, swish or tanh" err &&
	test_exit 2 train --name t -o x --metric bleu 2>err && test_grep "\-\-metric: .bleu." err &&
	test_exit 2 train --name t -o x --task nocolon 2>err && test_grep "\-\-task: NAME:" err &&
	test_exit 2 train --name t -o x --max-len 1 2>err && test_grep "\-\-max-len" err &&
	test_exit 2 train --name t -o x --dropout 1 2>err && test_grep "\-\-dropout" err &&
	test_exit 2 train --name t -o x a.jsonl b.jsonl 2>err && test_grep "b.jsonl. is extra" err &&
	test_grep "Try .af-train-adapter --help." err &&
	test_exit 2 train --name t -o x --metric pearson "$DATA/train.jsonl" 2>err &&
	test_grep "pearson" err &&
	! test -e x
'

test_expect_success 'a missing base directory, input file, dev file or output directory: exit 1, named' '
	test_exit 1 af-train-adapter --base nowhere --name t -o x "$DATA/train.jsonl" 2>err &&
	test_grep "^af-train-adapter: nowhere/config.json: No such file or directory" err &&
	test_exit 1 train --name t -o x missing.jsonl 2>err &&
	test_grep "^af-train-adapter: missing.jsonl: No such file or directory" err &&
	test_exit 1 train --name t -o x --dev nodev.jsonl "$DATA/train.jsonl" 2>err &&
	test_grep "nodev.jsonl: No such file or directory" err &&
	mkdir dir && test_exit 1 train --name t -o x dir 2>err &&
	test_grep "^af-train-adapter: dir:1: read error: Is a directory" err &&
	test_exit 1 train --name t -o nodir/x "$DATA/train.jsonl" 2>err &&
	test_grep "^af-train-adapter: nodir/x: cannot write there: No such file or directory" err &&
	! grep -q "epoch" err &&
	test_exit 1 train --name t -o x --checkpoint nodir/c "$DATA/train.jsonl" 2>err &&
	test_grep "^af-train-adapter: nodir/c: cannot write there" err &&
	! test -e x && test -z "$(ls | grep tmp)"
'

test_expect_success 'garbled JSONL: exit 1 with file:line, from a file and from stdin' '
	head -n 2 "$DATA/train.jsonl" >bad.jsonl &&
	echo "{\"input_ids\":[2,5" >>bad.jsonl &&
	test_exit 1 train --name t -o x bad.jsonl 2>err &&
	test_grep "^af-train-adapter: bad.jsonl:3: not valid JSON" err &&
	test_exit 1 train --name t -o x <bad.jsonl 2>err &&
	test_grep "^af-train-adapter: stdin:3: not valid JSON" err &&
	head -n 4 "$DATA/train.jsonl" >oov.jsonl &&
	echo "{\"input_ids\":[2,64,3],\"label\":\"pos\"}" >>oov.jsonl &&
	test_exit 1 train --name t -o x oov.jsonl 2>err &&
	test_grep "oov.jsonl:5: input_ids\[1\]: token id 64 is outside the vocabulary \[0, 64)" err &&
	echo "{\"label\":\"pos\"}" >noids.jsonl &&
	test_exit 1 train --name t -o x noids.jsonl 2>err &&
	test_grep "noids.jsonl:1: .*input_ids" err &&
	! test -e x
'

test_expect_success 'labels: unknown on a dev line, outside --labels, wrong kind' '
	head -n 2 "$DATA/dev.jsonl" >dev.jsonl && echo >>dev.jsonl &&
	echo "{\"input_ids\":[2,5,3],\"label\":\"maybe\"}" >>dev.jsonl &&
	test_exit 1 train --name t -o x --dev dev.jsonl "$DATA/train.jsonl" 2>err &&
	test_grep "^af-train-adapter: dev.jsonl:4: label \"maybe\" is not one of task t.s 2 labels" err &&
	test_exit 1 train --name t -o x --labels neg,neutral "$DATA/train.jsonl" 2>err &&
	test_grep "train.jsonl:[0-9]*: label \"pos\" is not one of task t.s 2 labels" err &&
	printf "{\"input_ids\":[2,5,3],\"label\":0.5}\n{\"input_ids\":[2,6,3],\"label\":\"x\"}\n" >mix.jsonl &&
	test_exit 1 train --name t -o x mix.jsonl 2>err &&
	test_grep "mix.jsonl:2: label \"x\": task t is a regression, a number is expected" err &&
	printf "{\"input_ids\":[2,5,3]}\n" >nolabel.jsonl &&
	test_exit 1 train --name t -o x nolabel.jsonl 2>err &&
	test_grep "no labels in the training data; give --labels" err &&
	! test -e x
'

test_expect_success 'an adapter file af-inspect reads: names, config, heads, base, training record' '
	train --name sent -o a.st --epochs 2 --batch-size 16 --dev "$DATA/dev.jsonl" -q \
		"$DATA/train.jsonl" 2>err &&
	! test -s err &&
	af-inspect a.st >out &&
	test_grep "a.st: adapter (af-adapter/1)" out &&
	test_grep "bert.encoder.layer.1.output.adapters.sent.adapter_up.bias  *F32  *\[16\]" out &&
	test_grep "heads.sent.4.weight  *F32  *\[2, 16\]" out &&
	! grep -q "attention.output.adapters" out &&
	test "$(meta a.st name)" = sent &&
	test "$(meta a.st config.arch)" = pfeiffer &&
	test "$(meta a.st config.bottleneck)" = 1 &&
	test "$(meta a.st config.non_linearity)" = relu &&
	test "$(meta a.st heads.sent)" = "[\"neg\", \"pos\"]" &&
	test "$(meta a.st base.fingerprint)" = "$(python3 "$AF_TOP/scripts/af_fingerprint.py" "$BASE")" &&
	test "$(meta a.st training.steps)" = 32 &&
	test "$(meta a.st training.train_examples)" = 256 &&
	test "$(meta a.st training.metric)" = accuracy &&
	meta a.st training.best_dev >/dev/null
'

test_expect_success 'houlsby (both sites, swish), --reduction-factor, regression, multi-task heads' '
	train --name h -o h.st --arch houlsby --reduction-factor 4 --epochs 1 -q "$DATA/train.jsonl" &&
	af-inspect h.st >out &&
	test_grep "layer.0.attention.output.adapters.h.adapter_down.0.weight  *F32  *\[4, 16\]" out &&
	test_grep "layer.0.output.adapters.h.adapter_down.0.weight  *F32  *\[4, 16\]" out &&
	test "$(meta h.st config.non_linearity)" = swish &&
	sed "s/\"label\":\"pos\"/\"label\":1.5/; s/\"label\":\"neg\"/\"label\":-0.5/" \
		"$DATA/train.jsonl" >reg.jsonl &&
	train --name r -o r.st --epochs 1 -q reg.jsonl &&
	test "$(meta r.st heads.r)" = regression &&
	af-inspect r.st >out && test_grep "heads.r.4.weight  *F32  *\[1, 16\]" out &&
	sed "s/}\$/,\"task\":\"one\"}/" "$DATA/train.jsonl" >multi.jsonl &&
	sed "s/}\$/,\"task\":\"two\"}/" reg.jsonl >>multi.jsonl &&
	train --name m -o m.st --epochs 1 --non-linearity tanh -q multi.jsonl &&
	test "$(meta m.st heads.one)" = "[\"neg\", \"pos\"]" &&
	test "$(meta m.st heads.two)" = regression &&
	test "$(meta m.st config.non_linearity)" = tanh &&
	test_exit 1 train --name m -o m2.st --epochs 1 --task two:lo,hi -q multi.jsonl 2>err &&
	test_grep "multi.jsonl:257: label -*[0-9.]*: task two has classes, not numbers" err
'

test_expect_success '--head-only: a head on the frozen base, no adapter tensors' '
	train --name ho --head-only -o ho.st --epochs 2 -q "$DATA/train.jsonl" &&
	af-inspect ho.st >out &&
	test_grep "^4 tensors, 306 parameters" out &&
	test_grep "heads.ho.4.weight  *F32  *\[2, 16\]" out &&
	! grep -q "adapters" out &&
	test "$(meta ho.st config.arch)" = none &&
	test "$(meta ho.st training.steps)" = 16
'

test_expect_success 'same seed, same bytes (with dropout); another seed, other bytes' '
	args="--name t --epochs 3 --batch-size 16 --lr 1e-2 --dropout 0.1 --dev $DATA/dev.jsonl -q" &&
	mkdir a b c &&
	(cd a && train $args -o out.st "$DATA/train.jsonl") &&
	(cd b && train $args -o out.st "$DATA/train.jsonl") &&
	(cd c && train $args --seed 7 -o out.st "$DATA/train.jsonl") &&
	cmp a/out.st b/out.st &&
	st_data a/out.st >a.data && st_data c/out.st >c.data &&
	! cmp -s a.data c.data
'

test_expect_success '--micro-batch: the same steps in passes (to rounding); 0 and auto (small batches): whole batches' '
	args="--name t --epochs 3 --batch-size 16 --lr 1e-2 --dropout 0 --dev $DATA/dev.jsonl -q" &&
	train $args --log full.log -o full.st "$DATA/train.jsonl" &&
	train $args --micro-batch 5 --log parts.log -o parts.st "$DATA/train.jsonl" &&
	! cmp -s full.st parts.st &&
	python3 -c "
import json, struct, sys
def tensors(path):
    b = open(path, \"rb\").read()
    n = struct.unpack(\"<Q\", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == \"__metadata__\": continue
        lo, hi = v[\"data_offsets\"]
        out[k] = struct.unpack(\"<%df\" % ((hi - lo) // 4), b[8 + n + lo:8 + n + hi])
    return out
a, b = tensors(\"full.st\"), tensors(\"parts.st\")
assert a.keys() == b.keys(), (a.keys(), b.keys())
worst = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
assert worst < 1e-4, worst
moved = max(abs(x) for k in a for x in a[k])
assert moved > 1e-3, moved
for x, y in zip(map(json.loads, open(\"full.log\")), map(json.loads, open(\"parts.log\"))):
    assert x[\"step\"] == y[\"step\"], (x, y)
    assert abs(x[\"train_loss\"] - y[\"train_loss\"]) < 1e-4, (x, y)
    assert abs(x[\"dev_loss\"] - y[\"dev_loss\"]) < 1e-4, (x, y)
" &&
	test_exit 2 train --name t --micro-batch -1 -o x.st "$DATA/train.jsonl" &&
	test_exit 2 train --name t --micro-batch some -o x.st "$DATA/train.jsonl" &&
	train $args --micro-batch 0 -o whole.st "$DATA/train.jsonl" &&
	train $args --micro-batch auto -o auto.st "$DATA/train.jsonl" &&
	st_data full.st >full.data && st_data whole.st | cmp - full.data &&
	st_data auto.st | cmp - full.data
'

test_expect_success 'gzip input, stdin and - read the same examples' '
	args="--name t --epochs 2 --batch-size 16 -q -o out.st" &&
	gzip -c "$DATA/train.jsonl" >train.jsonl.gz &&
	mkdir a b c &&
	(cd a && train $args - <"$DATA/train.jsonl") &&
	(cd b && train $args - <../train.jsonl.gz) &&
	(cd c && train $args <"$DATA/train.jsonl" && st_data out.st >data) &&
	cmp a/out.st b/out.st &&
	st_data a/out.st | cmp - c/data
'

test_expect_success '--lr 0 leaves every weight as initialised' '
	train --name t -o one.st --epochs 1 --lr 0 -q "$DATA/train.jsonl" &&
	train --name t -o three.st --epochs 3 --lr 0 -q "$DATA/train.jsonl" &&
	st_data one.st >one && st_data three.st >three && cmp one three &&
	train --name t -o moved.st --epochs 1 -q "$DATA/train.jsonl" &&
	st_data moved.st >moved && ! cmp -s one moved
'

test_expect_success 'the training loss falls on a learnable task; --log holds one JSON line per evaluation' '
	train --name t -o out.st --epochs 20 --batch-size 16 --lr 1e-2 --bottleneck 8 --dropout 0 \
		--dev "$DATA/dev.jsonl" --log log.jsonl -q "$DATA/train.jsonl" &&
	test $(wc -l <log.jsonl) = 20 &&
	python3 -c "
import json
L = [json.loads(l) for l in open(\"log.jsonl\")]
assert [x[\"epoch\"] for x in L] == list(range(1, 21)), L
assert [x[\"step\"] for x in L] == list(range(16, 321, 16)), L
for x in L:
    for k in (\"train_loss\", \"dev_loss\", \"accuracy\", \"f1\", \"mcc\", \"lr\", \"best\"):
        assert k in x, (k, x)
first, last = L[0][\"train_loss\"], L[-1][\"train_loss\"]
assert last < 0.5 * first, (first, last)
assert L[-1][\"dev_loss\"] < L[0][\"dev_loss\"], L
assert max(x[\"accuracy\"] for x in L) >= 0.8, L
"
'

test_expect_success '--eval-every N evaluates every N steps; without --quiet, progress and summaries on stderr' '
	train --name t -o out.st --epochs 2 --batch-size 16 --eval-every 5 \
		--dev "$DATA/dev.jsonl" --log log.jsonl "$DATA/train.jsonl" 2>err &&
	test $(wc -l <log.jsonl) = 6 &&
	python3 -c "
import json
assert [json.loads(l)[\"step\"] for l in open(\"log.jsonl\")] == [5, 10, 15, 20, 25, 30]
" &&
	test_grep "^dev epoch 1 step 5: .*accuracy" err &&
	test_grep "epoch 2/2  step 32/32  100%" err
'

test_expect_success '--patience stops after that many evaluations without improvement' '
	train --name t -o out.st --epochs 10 --batch-size 16 --lr 0 --patience 2 \
		--dev "$DATA/dev.jsonl" --log log.jsonl -q "$DATA/train.jsonl" &&
	test $(wc -l <log.jsonl) = 3 &&
	test "$(meta out.st training.steps)" = 48 &&
	test "$(meta out.st training.best_step)" = 16
'

test_expect_success 'inputs longer than --max-len, or than the base has positions, are cut, with one warning' '
	train --name t -o out.st --epochs 1 --max-len 5 "$DATA/train.jsonl" 2>err &&
	test $(grep -c "longer than --max-len" err) = 1 &&
	n=$(grep -c "\([0-9]*,\)\{5\}" "$DATA/train.jsonl") &&
	test_grep "^af-train-adapter: $n of 256 training examples are longer than --max-len 5 and were truncated" err &&
	echo "{\"input_ids\":[2,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,3],\"label\":\"neg\"}" >long.jsonl &&
	echo "{\"input_ids\":[2,40,3],\"label\":\"pos\"}" >>long.jsonl &&
	train --name t -o long.st --epochs 1 long.jsonl 2>err &&
	test_grep "^af-train-adapter: 1 of 2 training examples are longer than the base.s max_position_embeddings 16 and were truncated" err &&
	test -s long.st
'

# A run long enough to interrupt: 2000 examples, 20 epochs, 2500 steps (about a second or two);
# the signal goes out once the log shows the first evaluation, i.e. inside the training loop.
LONG="--name t --epochs 20 --batch-size 16 --lr 1e-2 --bottleneck 8 --dev $DATA/dev.jsonl --eval-every 50 --log log.jsonl -q"

test_expect_success 'SIGTERM: exit 143, a checkpoint, no output; --resume ends with the same bytes' '
	mkdir full part &&
	(cd full && train $LONG -o out.st "$DATA/big.jsonl") &&
	cd part && {
		# not through train(): a function in the background is a subshell, and the signal
		# must reach the program itself
		af-train-adapter --base "$BASE" --threads 1 $LONG -o out.st "$DATA/big.jsonl" 2>err &
		pid=$!
	} &&
	wait_for log.jsonl && kill -TERM $pid && test_exit 143 wait $pid &&
	test_grep "^af-train-adapter: interrupted; checkpoint written to out.st.ckpt (continue with --resume out.st.ckpt)" err &&
	! test -e out.st && test -s out.st.ckpt &&
	test -z "$(ls | grep tmp)" &&
	test $(wc -l <log.jsonl) -lt 50 &&
	train $LONG -o out.st --resume out.st.ckpt "$DATA/big.jsonl" &&
	cmp out.st ../full/out.st && ! test -e out.st.ckpt &&
	test $(wc -l <log.jsonl) = 50 &&
	test $(wc -l <../full/log.jsonl) = 50
'

test_expect_success 'SIGINT (Ctrl-C): exit 130 and a checkpoint; --checkpoint names it; resuming another configuration is refused' '
	if ! env --default-signal=INT true 2>/dev/null; then
		echo "env --default-signal is missing: a background job of a script ignores SIGINT"
		exit 0
	fi &&
	{
		env --default-signal=INT af-train-adapter --base "$BASE" --threads 1 $LONG -o out.st \
			--checkpoint state.ckpt "$DATA/big.jsonl" 2>err &
		pid=$!
	} &&
	wait_for log.jsonl && kill -INT $pid && test_exit 130 wait $pid &&
	test_grep "checkpoint written to state.ckpt" err &&
	! test -e out.st && ! test -e out.st.ckpt && test -s state.ckpt &&
	test "$(meta state.ckpt format)" = af-adapter/1 &&
	meta state.ckpt resume >/dev/null &&
	test_exit 1 train $LONG -o out.st --bottleneck 4 --resume state.ckpt "$DATA/big.jsonl" 2>err &&
	test_grep "state.ckpt: a checkpoint of another run: config.reduction_factor is 2 there, 4 here" err &&
	test_exit 2 train $LONG -o out.st --checkpoint out.st "$DATA/big.jsonl" 2>err &&
	test_grep "\-\-checkpoint out.st is the output file" err &&
	train --name t --epochs 1 -o prev.st "$DATA/train.jsonl" && cp prev.st prev.keep && ln -s prev.st alias.st &&
	test_exit 2 train --name t --epochs 1 -o prev.st --checkpoint alias.st "$DATA/train.jsonl" 2>err &&
	test_grep "is the output file" err && cmp prev.st prev.keep &&
	test_exit 1 train $LONG -o out.st --resume "$DATA/train.jsonl" "$DATA/big.jsonl" 2>err &&
	test_grep "train.jsonl" err &&
	! test -e out.st
'

test_done
