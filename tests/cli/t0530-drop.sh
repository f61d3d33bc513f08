#!/bin/sh
# AdapterDrop (--drop-layers): adapters and fusion absent from the lowest layers, recorded and
# honoured; training with the layer cache (memory, file) equals training without it; the file
# never outlives the run; resuming refills it; export writes AdapterHub's leave_out.
. "$(dirname "$0")/lib.sh"

SRC=$TEST_ROOT/src
mkdir -p "$SRC"

# A 4-layer base (hidden 16, the vocabulary of gen_separable), made by af-pretrain: random
# weights after one step, dropout 0.1, which the layers above K keep.
(
	cd "$SRC" &&
	awk 'BEGIN { print "[PAD]"; print "[UNK]"; print "[CLS]"; print "[SEP]"; print "[MASK]";
		for (i = 5; i < 64; i++) print "w" i }' >vocab.txt &&
	awk 'BEGIN { for (i = 0; i < 64; i++) print "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14" }' >text.txt &&
	af-pretrain --layers 4 --hidden 16 --heads 2 --ffn 32 --vocab vocab.txt --max-pos 64 \
		--max-len 16 --batch-size 4 --steps 1 --threads 1 -q -o base text.txt &&
	gen_separable 11 256 >a.jsonl &&
	gen_separable 23 256 >b.jsonl &&
	gen_separable 37 192 >target.jsonl &&
	gen_separable 101 64 >dev.jsonl &&
	gen_separable 7919 1500 >big.jsonl &&
	t="--base base --threads 1 --epochs 3 --batch-size 16 --lr 1e-2 --bottleneck 8 -q" &&
	af-train-adapter $t --name a -o a.st a.jsonl &&
	af-train-adapter $t --name b -o b.st --seed 3 --drop-layers 2 b.jsonl
) || echo "# setup failed: base or adapters missing"
BASE=$SRC/base

# Tensor names of a file, one a line.
names() {
	python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
print("\n".join(sorted(k for k in json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]]) if k != "__metadata__")))' "$1"
}

# config.leave_out of a file, as JSON ("none" when absent).
leave_out() {
	python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
c = json.loads(json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])["__metadata__"]["config"])
print(json.dumps(c["leave_out"]) if "leave_out" in c else "none")' "$1"
}

# same_tensors A B: the same tensors, every value within 1e-5 (to rounding).
same_tensors() {
	python3 -c '
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
                             b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b): sys.exit("tensors differ: %s" % sorted(set(a) ^ set(b)))
d = max(abs(x - y) for k in a for x, y in zip(a[k], b[k]))
print("max |diff| %.3g" % d)
sys.exit(d > 1e-5)' "$1" "$2"
}

wait_for() {
	i=0
	while ! test -s "$1" && test $i -lt 300; do
		sleep 0.1
		i=$((i + 1))
	done
	test -s "$1"
}

# The training losses of a --log file, one a line.
losses() {
	sed 's/.*"train_loss":\([^,]*\).*/\1/' "$1"
}

train() {
	af-train-adapter --base "$BASE" --threads 1 --bottleneck 8 "$@"
}
fuse() {
	af-fuse --base "$BASE" --threads 1 --name tgt "$@"
}

test_expect_success '--drop-layers K: no adapter tensors below K, leave_out recorded' '
	names "$SRC/b.st" >b.names &&
	! grep -q "layer\.[01]\." b.names &&
	test "$(grep -c "layer\.2\.output\.adapters\.b\." b.names)" = 4 &&
	test "$(grep -c "layer\.3\.output\.adapters\.b\." b.names)" = 4 &&
	test "$(leave_out "$SRC/b.st")" = "[0, 1]" &&
	test "$(leave_out "$SRC/a.st")" = none &&
	names "$SRC/a.st" >a.names && grep -q "layer\.0\.output\.adapters\.a\." a.names
'

test_expect_success 'usage: K below the base layers; not with --head-only' '
	test_exit 2 train --name x -o x.st --drop-layers 4 "$SRC/a.jsonl" 2>err &&
	test_grep "drop-layers 4: the base has 4 layers, so at most 3" err &&
	test_exit 2 train --name x -o x.st --drop-layers 1 --head-only "$SRC/a.jsonl" 2>err &&
	test_grep "head-only trains no adapter" err &&
	test_exit 2 train --name x -o x.st --drop-layers -1 "$SRC/a.jsonl" 2>/dev/null &&
	! test -e x.st
'

# dropout 0.1 (the base's) above K: the cache must give the same masks, steps and weights
DROP="--epochs 4 --batch-size 16 --lr 1e-2 --drop-layers 2 --dev $SRC/dev.jsonl -q"

test_expect_success 'adapter: memory cache, file cache and no cache train the same weights' '
	mkdir cache &&
	train --name d $DROP --no-cache --log none.log -o none.st "$SRC/a.jsonl" &&
	train --name d $DROP --log mem.log -o mem.st "$SRC/a.jsonl" &&
	train --name d $DROP --cache-memory 0 --cache-dir cache --log file.log -o file.st \
		"$SRC/a.jsonl" &&
	same_tensors none.st mem.st && same_tensors none.st file.st &&
	losses none.log >none.l && losses mem.log >mem.l && losses file.log >file.l &&
	test "$(wc -l <none.l)" = 4 && cmp none.l mem.l && cmp none.l file.l &&
	test -z "$(ls cache)"
'

test_expect_success 'the cache is not a no-op: --drop-layers 2 trains other weights than 0' '
	train --name d --epochs 2 --batch-size 16 --lr 1e-2 -q -o k0.st "$SRC/a.jsonl" &&
	train --name d --epochs 2 --batch-size 16 --lr 1e-2 -q --drop-layers 2 -o k2.st \
		"$SRC/a.jsonl" &&
	names k2.st >k2.names && names k0.st | grep -v "layer\.[01]\." >k0.names &&
	cmp k0.names k2.names && ! same_tensors k0.st k2.st
'

test_expect_success 'where the cache is says a line on standard error' '
	mkdir cache &&
	train --name d --epochs 1 --drop-layers 3 -o m.st "$SRC/a.jsonl" 2>err &&
	test_grep "layers 0-2 hold no adapter: their output (0 MiB) is kept in memory" err &&
	train --name d --epochs 1 --drop-layers 1 --cache-memory 0 --cache-dir cache -o f.st \
		"$SRC/a.jsonl" 2>err &&
	test_grep "is kept in a file under cache" err &&
	train --name d --epochs 1 --drop-layers 1 --no-cache -o n.st "$SRC/a.jsonl" 2>err &&
	test_grep "layers 0-0 hold no adapter: they run without dropout, every epoch" err &&
	test_exit 1 train --name d --epochs 1 --drop-layers 1 --cache-memory 0 \
		--cache-dir no/such -o x.st "$SRC/a.jsonl" 2>err &&
	test_grep "no/such/af-layer-cache.*: cannot create the layer cache" err && ! test -e x.st
'

FUSE="--adapter $SRC/a.st --adapter $SRC/b.st --epochs 3 --batch-size 16 --lr 1e-3 --dev $SRC/dev.jsonl -q"

test_expect_success 'fusion of adapters left out of different layers: only where all are' '
	fuse $FUSE -o f.st "$SRC/target.jsonl" &&
	test "$(leave_out f.st)" = "[0, 1]" &&
	names f.st >f.names && ! grep -q "layer\.[01]\." f.names &&
	grep -q "layer\.2\.output\.adapter_fusion_layer\.a,b\.query\.weight" f.names &&
	fuse $FUSE --drop-layers 3 -o f3.st "$SRC/target.jsonl" &&
	test "$(leave_out f3.st)" = "[0, 1, 2]" &&
	names f3.st >f3.names && ! grep -q "layer\.[012]\." f3.names &&
	grep -q "layer\.3\.output\.adapter_fusion_layer" f3.names
'

test_expect_success 'fusion: cache or not, the same fusion; af-infer runs it' '
	mkdir cache &&
	fuse $FUSE --drop-layers 3 --no-cache --log none.log -o none.st "$SRC/target.jsonl" &&
	fuse $FUSE --drop-layers 3 --cache-memory 0 --cache-dir cache --log file.log -o file.st \
		"$SRC/target.jsonl" &&
	same_tensors none.st file.st && losses none.log >a && losses file.log >b && cmp a b &&
	test -z "$(ls cache)" &&
	af-infer --base "$BASE" --adapter "$SRC/a.st" --adapter "$SRC/b.st" --fusion file.st \
		--fusion-weights "$SRC/dev.jsonl" >out.jsonl &&
	test "$(wc -l <out.jsonl)" = 64 &&
	head -n 1 out.jsonl | grep -q "\"layers\":\[null,null,null,\[0\.[0-9]*," &&
	af-inspect --fusion-weights --csv out.jsonl >csv &&
	test_grep "^,2,b,$" csv && test_grep "^,3,b,0\.[0-9]" csv
'

test_expect_success 'a killed run leaves no cache file behind' '
	mkdir cache &&
	{
		fuse $FUSE --drop-layers 2 --epochs 50 --cache-memory 0 --cache-dir cache --log log \
			-o out.st "$SRC/big.jsonl" 2>/dev/null &
		pid=$!
	} &&
	wait_for log && kill -KILL $pid; wait $pid; ! test -e out.st && test -z "$(ls cache)"
'

test_expect_success 'interrupted and resumed (the cache refilled): the same fusion' '
	mkdir full part &&
	(cd full && fuse $FUSE --drop-layers 2 -o out.st "$SRC/target.jsonl") &&
	cd part &&
	AF_TEST_INTERRUPT_AT=20 test_exit 130 fuse $FUSE --drop-layers 2 -o out.st \
		"$SRC/target.jsonl" &&
	test -s out.st.ckpt && ! test -e out.st &&
	test_exit 1 fuse $FUSE --drop-layers 3 --resume out.st.ckpt -o out.st \
		"$SRC/target.jsonl" 2>err &&
	test_grep "leave_out" err &&
	fuse $FUSE --drop-layers 2 --no-cache --resume out.st.ckpt -o out.st "$SRC/target.jsonl" &&
	same_tensors ../full/out.st out.st
'

test_expect_success 'af-convert --to-hub writes leave_out, a fusion'"'"'s into its adapters' '
	af-convert --to-hub hb "$SRC/b.st" &&
	python3 -c "import json,sys; c = json.load(open(\"hb/adapter_config.json\"))[\"config\"];
sys.exit(c[\"leave_out\"] != [0, 1])" &&
	fuse $FUSE --drop-layers 3 -o f.st "$SRC/target.jsonl" &&
	af-convert --to-hub hf f.st --adapter "$SRC/a.st" --adapter "$SRC/b.st" &&
	for n in a b; do
		python3 -c "import json,sys; c = json.load(open(\"hf/$n/adapter_config.json\"))[\"config\"];
sys.exit(c[\"leave_out\"] != [0, 1, 2])" || exit 1
	done
'

test_done
