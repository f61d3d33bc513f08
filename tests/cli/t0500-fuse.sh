#!/bin/sh
# af-fuse: options, adapters that do not belong together, every fusion method and its file,
# frozen and unfrozen adapters, learning, determinism, SIGTERM and --resume.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64 (gen-train-fixtures.py)
SRC=$TEST_ROOT/src
mkdir -p "$SRC"

gen_separable 11 256 >"$SRC/a.jsonl"
gen_separable 23 256 >"$SRC/b.jsonl"
gen_separable 37 256 >"$SRC/target.jsonl"
gen_separable 101 128 >"$SRC/dev.jsonl"
gen_separable 7919 2000 >"$SRC/big.jsonl"

# Source adapters: a and b (Pfeiffer, bottleneck 8, trained on the task), ha and hb (Houlsby),
# and o, trained on a copy of the base with one byte changed (another fingerprint).
(
	cd "$SRC" &&
	src="--base $BASE --threads 1 --epochs 10 --batch-size 16 --lr 1e-2 --bottleneck 8 --dropout 0 -q" &&
	af-train-adapter $src --name a -o a.st a.jsonl &&
	af-train-adapter $src --name b -o b.st --seed 3 b.jsonl &&
	af-train-adapter $src --name ha -o ha.st --arch houlsby --epochs 1 a.jsonl &&
	af-train-adapter $src --name hb -o hb.st --arch houlsby --epochs 1 b.jsonl &&
	mkdir other && cp "$BASE/config.json" "$BASE/model.safetensors" other/ &&
	size=$(wc -c <other/model.safetensors) &&
	printf "\077" | dd of=other/model.safetensors bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null &&
	! cmp -s "$BASE/model.safetensors" other/model.safetensors &&
	af-train-adapter --base other --threads 1 --epochs 1 -q --name o -o o.st a.jsonl
) || echo "# setup failed: source adapters missing"

# Everything after a safetensors header: the tensors' bytes.
st_data() {
	python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[8 + struct.unpack("<Q", b[:8])[0]:])' "$1"
}

# The raw bytes of one tensor, as hex (empty when absent).
st_tensor() {
	python3 -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
t = json.loads(b[8:8 + n]).get(sys.argv[2])
if t:
    s, e = t["data_offsets"]
    print(b[8 + n + s:8 + n + e].hex())' "$1" "$2"
}

# One metadata value of a file, via af-inspect --json ("config.method" reaches into JSON).
meta() {
	af-inspect --json "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)["files"][0]["metadata"]
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if not isinstance(v, str) else v)' "$2"
}

wait_for() {
	i=0
	while ! test -s "$1" && test $i -lt 300; do
		sleep 0.1
		i=$((i + 1))
	done
	test -s "$1"
}

fuse() {
	af-fuse --base "$BASE" --threads 1 --name tgt "$@"
}
AB="--adapter $SRC/a.st --adapter $SRC/b.st"
FUSION=bert.encoder.layer.0.output.adapter_fusion_layer.a,b

test_expect_success '--help lists every option; --version' '
	af-fuse --help >out 2>err &&
	! test -s err &&
	for o in --base --adapter --name --output --method --heads --temperature \
		--temperature-anneal --fixed-weights --gate --unfreeze-adapters --adapter-lr --dev \
		--labels --task --regression --max-len --epochs --max-steps --lr --batch-size \
		--weight-decay --warmup-ratio --max-grad-norm --dropout --seed --eval-every --metric \
		--patience --log --checkpoint --resume --threads --quiet; do
		grep -q -e "$o" out || { echo "$o missing from --help" && exit 1; }
	done &&
	test_grep "attention (default), static, multihead, weighted, gating" out &&
	af-fuse --version >out && test_grep "^af-fuse [0-9]" out
'

test_expect_success 'usage errors exit 2 and say what is wrong' '
	test_exit 2 fuse -o x --adapter "$SRC/a.st" 2>err &&
	test_grep "at least two --adapter files are needed, 1 given" err &&
	test_exit 2 fuse -o x 2>err && test_grep "0 given" err &&
	test_exit 2 fuse -o x $AB --method mean 2>err &&
	test_grep "\-\-method: .mean. is not attention, static, multihead, weighted or gating" err &&
	test_exit 2 fuse -o x $AB --fixed-weights 2>err &&
	test_grep "\-\-fixed-weights is for --method weighted" err &&
	test_exit 2 fuse -o x $AB --method gating --gate relu 2>err &&
	test_grep "\-\-gate: .relu. is not sigmoid or softmax" err &&
	test_exit 2 fuse -o x $AB --heads 0 2>err && test_grep "\-\-heads" err &&
	test_exit 2 fuse -o x $AB --heads 2 2>err && test_grep "\-\-heads is for --method multihead" err &&
	test_exit 2 fuse -o x $AB --method multihead --heads 3 "$SRC/target.jsonl" 2>err &&
	test_grep "\-\-heads 3 does not divide the base.s hidden size 16" err &&
	test_exit 2 fuse -o x $AB --temperature 0 2>err && test_grep "\-\-temperature" err &&
	test_exit 2 fuse -o x $AB --adapter-lr -1 2>err && test_grep "\-\-adapter-lr" err &&
	test_exit 2 af-fuse --base "$BASE" -o x $AB 2>err && test_grep "\-\-name NAME is required" err &&
	test_exit 2 fuse -o x $AB --bogus 2>err && test_grep "Try .af-fuse --help." err &&
	! test -e x
'

test_expect_success 'adapters that do not belong together, or head-only files, are refused, naming the odd file' '
	test_exit 1 fuse -o x $AB --adapter "$SRC/o.st" "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/o.st: trained on a different base (fingerprint" err &&
	test_exit 1 fuse -o x --adapter "$SRC/a.st" --adapter "$SRC/ha.st" "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/ha.st: a houlsby adapter, but $SRC/a.st is pfeiffer: fused adapters must share the architecture" err &&
	test_exit 1 fuse -o x --adapter "$SRC/a.st" --adapter "$SRC/a.st" "$SRC/target.jsonl" 2>err &&
	test_grep "both hold an adapter named .a." err &&
	test_exit 1 fuse -o x $AB --adapter missing.st "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: missing.st: No such file or directory" err &&
	test_exit 1 fuse -o x $AB --adapter "$BASE/model.safetensors" "$SRC/target.jsonl" 2>err &&
	test_grep "model.safetensors: not an af adapter file (metadata format is pt, af-adapter/1 expected)" err &&
	test_exit 1 fuse -o x $AB --adapter "$SRC/target.jsonl" "$SRC/target.jsonl" 2>err &&
	test_grep "target.jsonl" err &&
	fuse -o f.st $AB --epochs 1 -q "$SRC/target.jsonl" &&
	test_exit 1 fuse -o x --adapter "$SRC/a.st" --adapter f.st "$SRC/target.jsonl" 2>err &&
	test_grep "f.st: a fusion file (af-fusion/1), not an adapter file" err &&
	af-train-adapter --base "$BASE" --threads 1 --name ho --head-only --epochs 1 -q -o ho.st \
		"$SRC/a.jsonl" &&
	af-train-adapter --base "$BASE" --threads 1 --name ho2 --head-only --epochs 1 -q -o ho2.st \
		"$SRC/a.jsonl" &&
	test_exit 1 fuse -o x --adapter ho.st --adapter ho2.st "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: ho.st holds no adapter (a head alone): nothing to fuse" err &&
	test_exit 1 fuse -o x --adapter "$SRC/a.st" --adapter ho.st "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: ho.st: .*fused adapters must share the architecture" err &&
	! test -e x
'

test_expect_success 'bad input: missing base, garbled JSONL, unknown dev label (file:line)' '
	test_exit 1 af-fuse --base nowhere --name t -o x $AB "$SRC/target.jsonl" 2>err &&
	test_grep "nowhere/config.json: No such file or directory" err &&
	head -n 3 "$SRC/target.jsonl" >bad.jsonl && echo "{\"input_ids\":[2,\"x\"]}" >>bad.jsonl &&
	test_exit 1 fuse -o x $AB bad.jsonl 2>err && test_grep "^af-fuse: bad.jsonl:4: " err &&
	test_exit 1 fuse -o x $AB <bad.jsonl 2>err && test_grep "^af-fuse: stdin:4: " err &&
	cp "$SRC/dev.jsonl" dev.jsonl && echo "{\"input_ids\":[2,5,3],\"label\":\"meh\"}" >>dev.jsonl &&
	test_exit 1 fuse -o x $AB --dev dev.jsonl "$SRC/target.jsonl" 2>err &&
	test_grep "^af-fuse: dev.jsonl:129: label \"meh\" is not one of task tgt.s 2 labels" err &&
	! test -e x
'

# method, its options, a tensor it must have with its shape, and one it must not have
for m in "attention||value.weight  *F32  *\[16, 16\]|in_proj" \
	"static||key.bias  *F32  *\[16\]|value.weight" \
	"multihead|--heads 4 --temperature 2|in_proj_weight  *F32  *\[48, 16\]|query" \
	"weighted||weights  *F32  *\[2\]|query" \
	"gating|--gate softmax|gate.3.weight  *F32  *\[2, 8\]|query"; do
	IFS="|" read -r method opts has hasnot <<EOF
$m
EOF
	test_expect_success "--method $method $opts: trains, writes a fusion file af-inspect reads" "
	fuse -o f.st $AB --method $method $opts --epochs 2 --batch-size 16 --dev \"\$SRC/dev.jsonl\" -q \
		\"\$SRC/target.jsonl\" 2>err &&
	! test -s err &&
	af-inspect f.st >out &&
	test_grep \"f.st: fusion (af-fusion/1)\" out &&
	test_grep \"layer.0.output.adapter_fusion_layer.a,b.$has\" out &&
	test_grep \"layer.1.output.adapter_fusion_layer.a,b.$has\" out &&
	! grep -q \"$hasnot\" out &&
	! grep -q \"\\.adapters\\.\" out &&
	test_grep \"heads.tgt.4.weight  *F32  *\\[2, 16\\]\" out &&
	test \"\$(meta f.st name)\" = a,b &&
	test \"\$(meta f.st config.method)\" = $method &&
	test \"\$(meta f.st config.adapters_updated)\" = 0 &&
	test \"\$(meta f.st adapters.0.name)\" = a &&
	test \"\$(meta f.st adapters.1.name)\" = b &&
	test \"\$(meta f.st adapters.0.sha256)\" = \"\$(sha256sum \"\$SRC/a.st\" | cut -c1-64)\" &&
	test \"\$(meta f.st adapters.1.sha256)\" = \"\$(sha256sum \"\$SRC/b.st\" | cut -c1-64)\" &&
	test \"\$(meta f.st base.fingerprint)\" = \"\$(python3 \"\$AF_TOP/scripts/af_fingerprint.py\" \"\$BASE\")\" &&
	test \"\$(meta f.st heads.tgt)\" = '[\"neg\", \"pos\"]' &&
	test \"\$(meta f.st training.steps)\" = 32
"
done

test_expect_success 'options recorded: multihead heads and temperature, gate, fixed weights stay uniform, annealing' '
	fuse -o mh.st $AB --method multihead --heads 2 --temperature 2 --epochs 1 -q "$SRC/target.jsonl" &&
	test "$(meta mh.st config.heads)" = 2 && test "$(meta mh.st config.temperature)" = 2 &&
	fuse -o g.st $AB --method gating --gate softmax --epochs 1 -q "$SRC/target.jsonl" &&
	test "$(meta g.st config.gate)" = softmax &&
	fuse -o g2.st $AB --method gating --epochs 1 -q "$SRC/target.jsonl" &&
	test "$(meta g2.st config.gate)" = sigmoid &&
	fuse -o w.st $AB --method weighted --fixed-weights --epochs 2 --lr 1e-2 -q "$SRC/target.jsonl" &&
	test "$(meta w.st config.fixed_weights)" = 1 &&
	af-inspect -t "$FUSION.weights" w.st >out &&
	test_grep "^  min  *0$" out && test_grep "^  max  *0$" out &&
	fuse -o w2.st $AB --method weighted --epochs 2 --lr 1e-2 -q "$SRC/target.jsonl" &&
	af-inspect -t "$FUSION.weights" w2.st >out && ! grep -q "^  max  *0$" out &&
	fuse -o an.st $AB --temperature-anneal --epochs 2 --batch-size 16 -q "$SRC/target.jsonl" &&
	test "$(meta an.st config.temperature_anneal)" = true &&
	python3 -c "assert abs($(meta an.st config.temperature) - (50 - 0.05 * 32)) < 1e-4"
'

test_expect_success 'frozen adapters stay out of the file; --unfreeze-adapters trains them at --adapter-lr' '
	A0=bert.encoder.layer.0.output.adapters.a.adapter_down.0.weight &&
	fuse -o frozen.st $AB --epochs 1 -q "$SRC/target.jsonl" &&
	test -z "$(st_tensor frozen.st $A0)" &&
	fuse -o still.st $AB --unfreeze-adapters --adapter-lr 0 --epochs 1 -q "$SRC/target.jsonl" &&
	test "$(meta still.st config.adapters_updated)" = 1 &&
	af-inspect still.st >out &&
	test $(grep -c "\.adapters\.[ab]\." out) = 16 &&
	test "$(st_tensor still.st $A0)" = "$(st_tensor "$SRC/a.st" $A0)" &&
	fuse -o moved.st $AB --unfreeze-adapters --adapter-lr 1e-2 --epochs 1 -q "$SRC/target.jsonl" &&
	test -n "$(st_tensor moved.st $A0)" &&
	test "$(st_tensor moved.st $A0)" != "$(st_tensor "$SRC/a.st" $A0)" &&
	F0=$FUSION.query.weight &&
	test "$(st_tensor moved.st $F0)" != "$(st_tensor still.st $F0)"
'

test_expect_success 'houlsby adapters: a fusion layer at both sites of every layer' '
	fuse -o h.st --adapter "$SRC/ha.st" --adapter "$SRC/hb.st" --method weighted --epochs 1 -q \
		"$SRC/target.jsonl" &&
	af-inspect h.st >out &&
	test_grep "layer.1.attention.output.adapter_fusion_layer.ha,hb.weights  *F32  *\[2\]" out &&
	test_grep "layer.1.output.adapter_fusion_layer.ha,hb.weights  *F32  *\[2\]" out &&
	test "$(meta h.st config.arch)" = houlsby
'

test_expect_success 'the training loss falls when fusing adapters that know the task' '
	fuse -o out.st $AB --epochs 5 --batch-size 16 --lr 1e-2 --dropout 0 --dev "$SRC/dev.jsonl" \
		--log log.jsonl -q "$SRC/target.jsonl" &&
	test $(wc -l <log.jsonl) = 5 &&
	python3 -c "
import json
L = [json.loads(l) for l in open(\"log.jsonl\")]
first, last = L[0][\"train_loss\"], L[-1][\"train_loss\"]
assert last < 0.6 * first, (first, last)
assert max(x[\"accuracy\"] for x in L) >= 0.8, L
"
'

test_expect_success 'same seed, same bytes; another seed, other bytes' '
	args="$AB --epochs 2 --batch-size 16 --lr 1e-3 -q -o out.st" &&
	mkdir a b c &&
	(cd a && fuse $args "$SRC/target.jsonl") &&
	(cd b && fuse $args "$SRC/target.jsonl") &&
	(cd c && fuse $args --seed 5 "$SRC/target.jsonl") &&
	cmp a/out.st b/out.st &&
	st_data a/out.st >a.data && st_data c/out.st >c.data && ! cmp -s a.data c.data
'

LONG="$AB --unfreeze-adapters --adapter-lr 1e-3 --epochs 10 --batch-size 16 --lr 1e-2 --dev $SRC/dev.jsonl --eval-every 50 --log log.jsonl -q"

test_expect_success 'SIGTERM: exit 143, a checkpoint, no output; --resume ends with the same bytes' '
	mkdir full part &&
	(cd full && fuse $LONG -o out.st "$SRC/big.jsonl") &&
	cd part && {
		# directly, not through fuse(): the signal must reach the program, not a subshell
		af-fuse --base "$BASE" --threads 1 --name tgt $LONG -o out.st "$SRC/big.jsonl" 2>err &
		pid=$!
	} &&
	wait_for log.jsonl && kill -TERM $pid && test_exit 143 wait $pid &&
	test_grep "^af-fuse: interrupted; checkpoint written to out.st.ckpt" err &&
	! test -e out.st && test -s out.st.ckpt && test -z "$(ls | grep tmp)" &&
	test "$(meta out.st.ckpt format)" = af-fusion/1 &&
	fuse $LONG -o out.st --resume out.st.ckpt "$SRC/big.jsonl" &&
	cmp out.st ../full/out.st &&
	test $(wc -l <log.jsonl) = $(wc -l <../full/log.jsonl)
'

test_done
