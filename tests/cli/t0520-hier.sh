#!/bin/sh
# Hierarchical fusion (af-fuse --fusion-input): a fusion over (a fusion over a, b) and an adapter
# for c learns "a or b or c" from adapters trained on a, b and c separately; it infers and
# inspects at every level; its file records the tree; refusals at every level; three levels;
# --unfreeze-adapters; no export to AdapterHub.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64 (gen-train-fixtures.py)
SRC=$TEST_ROOT/src
mkdir -p "$SRC"

# gen_or SEED N TASK: lines of 12 tokens between [CLS]=2 and [SEP]=3. Three groups of tokens, a
# 5-19, b 20-34, c 35-49; a group "on" in a line puts 4 of its tokens there, the others are from
# 50-62, shuffled. Label "yes" when a group of TASK is on. TASK of one letter: that group is on
# in half the lines, each other in a fifth (the adapter must tell them apart); "ab", "abc": every
# group on in a quarter of the lines.
gen_or() {
	awk -v seed="$1" -v n="$2" -v task="$3" '
	function rnd() { x = (x * 16807) % 2147483647; return x / 2147483647 }
	BEGIN {
		x = seed
		for (i = 0; i < n; i++) {
			for (j = 0; j < 12; j++) t[j] = 50 + int(rnd() * 13)
			k = 0; y = 0
			for (g = 0; g < 3; g++) {
				in_task = index(task, substr("abc", g + 1, 1)) > 0
				on = rnd() < (length(task) == 1 ? (in_task ? 0.5 : 0.2) : 0.25)
				if (on) for (r = 0; r < 4; r++) t[k++] = 5 + 15 * g + int(rnd() * 15)
				if (on && in_task) y = 1
			}
			for (j = 11; j > 0; j--) { r = int(rnd() * (j + 1)); v = t[j]; t[j] = t[r]; t[r] = v }
			s = "[2"
			for (j = 0; j < 12; j++) s = s "," t[j]
			printf "{\"input_ids\":%s,3],\"label\":\"%s\"}\n", s, y ? "yes" : "no"
		}
	}'
}

# Source adapters a, b, c, each on its own task; an inner fusion ab over a, b (task "a or b");
# ac over a, c; the hierarchical fusion h over ab and c (task "a or b or c"); a2, a retrained a
# (another sha256); ab2, ab retrained with another seed; o1, o2 and oab on another base.
(
	cd "$SRC" &&
	gen_or 11 1024 a >a.jsonl && gen_or 12 1024 b >b.jsonl && gen_or 13 1024 c >c.jsonl &&
	gen_or 14 512 ab >ab.jsonl && gen_or 15 512 abc >abc.jsonl && gen_or 16 400 abc >test.jsonl &&
	gen_or 17 128 abc >dev.jsonl &&
	src="--base $BASE --threads 1 --epochs 20 --batch-size 32 --lr 1e-2 --bottleneck 8 --dropout 0 -q" &&
	af-train-adapter $src --name a -o a.st a.jsonl &&
	af-train-adapter $src --name b -o b.st b.jsonl &&
	af-train-adapter $src --name c -o c.st c.jsonl &&
	af-train-adapter $src --name a -o a2.st --epochs 1 a.jsonl &&
	fz="--base $BASE --threads 1 --epochs 10 --batch-size 32 --lr 5e-3 --dropout 0 -q" &&
	af-fuse $fz --name ab --adapter a.st --adapter b.st -o ab.st ab.jsonl &&
	af-fuse $fz --name ab --adapter a.st --adapter b.st --seed 9 -o ab2.st ab.jsonl &&
	af-fuse $fz --name ac --adapter a.st --adapter c.st --epochs 1 -o ac.st abc.jsonl &&
	mkdir other && cp "$BASE/config.json" "$BASE/model.safetensors" other/ &&
	size=$(wc -c <other/model.safetensors) &&
	printf "\077" | dd of=other/model.safetensors bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null &&
	af-train-adapter --base other --threads 1 --epochs 1 -q --name a -o o1.st a.jsonl &&
	af-train-adapter --base other --threads 1 --epochs 1 -q --name b -o o2.st b.jsonl &&
	af-fuse --base other --threads 1 --epochs 1 -q --name ab --adapter o1.st --adapter o2.st \
		-o oab.st ab.jsonl
) || echo "# setup failed: source files missing"

# One metadata value of a file, via af-inspect --json ("config.method" reaches into JSON).
meta() {
	af-inspect --json "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)["files"][0]["metadata"]
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if not isinstance(v, str) else v)' "$2"
}

accuracy() {
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tasks"][sys.argv[2]]["accuracy"])' "$1" "$2"
}

ABC="--adapter $SRC/a.st --adapter $SRC/b.st --adapter $SRC/c.st"
FZ="--base $BASE --threads 1 --epochs 10 --batch-size 32 --lr 5e-3 --dropout 0 -q"
H=bert.encoder.layer.0.output.adapter_fusion_layer.

test_expect_success 'a fusion over (a fusion over a, b) and c trains; its file records the tree' '
	af-fuse $FZ --name abc --fusion-input "$SRC/ab.st" $ABC --dev "$SRC/dev.jsonl" \
		-o "$SRC/h.st" "$SRC/abc.jsonl" &&
	test "$(meta "$SRC/h.st" name)" = "(a,b),c" &&
	test "$(meta "$SRC/h.st" config.adapter_names)" = "[\"(a,b)\", \"c\"]" &&
	test "$(meta "$SRC/h.st" tree.0.fusion)" = "a,b" &&
	test "$(meta "$SRC/h.st" tree.0.sha256)" = "$(sha256sum <"$SRC/ab.st" | cut -c1-64)" &&
	test "$(meta "$SRC/h.st" tree.0.inputs.1.adapter)" = b &&
	test "$(meta "$SRC/h.st" tree.0.inputs.1.sha256)" = "$(sha256sum <"$SRC/b.st" | cut -c1-64)" &&
	test "$(meta "$SRC/h.st" tree.1.adapter)" = c &&
	test "$(meta "$SRC/h.st" adapters.2.sha256)" = "$(sha256sum <"$SRC/c.st" | cut -c1-64)" &&
	af-inspect "$SRC/h.st" >out &&
	test_grep "adapter_fusion_layer.(a,b),c.query.weight" out &&
	! grep -q "adapter_fusion_layer.a,b\.\|adapters\.a\." out
'

test_expect_success 'the order on the command line is the order of its inputs' '
	af-fuse $FZ --name abc --epochs 1 $ABC --fusion-input "$SRC/ab.st" -o ca.st "$SRC/abc.jsonl" &&
	test "$(meta ca.st config.adapter_names)" = "[\"c\", \"(a,b)\"]"
'

test_expect_success 'it learns "a or b or c" from adapters trained apart: held-out accuracy above 0.9' '
	af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" --fusion "$SRC/h.st" \
		--metrics-json m.json "$SRC/test.jsonl" >out &&
	test $(wc -l <out) = 400 &&
	af-infer --base "$BASE" --adapter "$SRC/a.st" --adapter "$SRC/b.st" --fusion "$SRC/ab.st" \
		--task ab --metrics-json inner.json "$SRC/test.jsonl" >/dev/null &&
	acc=$(accuracy m.json abc) && inner=$(accuracy inner.json ab) &&
	echo "# hierarchical: $acc; the inner fusion over a, b alone: $inner" &&
	awk -v a="$acc" -v i="$inner" "BEGIN { exit !(a > 0.9 && a > i + 0.05) }"
'

test_expect_success 'af-infer --fusion-weights gives every level; af-inspect shows each' '
	af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" --fusion "$SRC/h.st" \
		--fusion-weights "$SRC/dev.jsonl" >fw.jsonl &&
	test_grep "\"fusion_weights\":{\"adapters\":\[\"(a,b)\",\"c\"\],\"layers\":\[\[.*\]\],\"levels\":\[{\"fusion\":\"a,b\",\"adapters\":\[\"a\",\"b\"\],\"layers\":\[\[" fw.jsonl &&
	af-inspect --fusion-weights --by-label fw.jsonl >out &&
	test_grep "^fusion weights: mean over 128 lines$" out &&
	test_grep "^fusion a,b: fusion weights: mean over 128 lines$" out &&
	test_grep "^fusion a,b: gold label yes: mean over" out &&
	test_grep "^layer  (a,b) " out && test_grep "^layer  a  " out &&
	af-inspect --fusion-weights --csv fw.jsonl >out.csv &&
	test_grep "^level,group,layer,adapter,value$" out.csv &&
	test_grep "^,,1,\"(a,b)\",0\.[0-9]" out.csv && test_grep "^\"a,b\",,0,b,0\.[0-9]" out.csv &&
	af-inspect --fusion-weights --json fw.jsonl >out.json &&
	python3 -c "
import json
m = json.load(open(\"out.json\"))[\"maps\"]
assert [x.get(\"level\") for x in m] == [None, \"a,b\"], m
assert m[1][\"columns\"] == [\"a\", \"b\"] and abs(sum(m[1][\"values\"][0]) - 1) < 1e-5, m
" &&
	af-inspect --fusion-weights --png fw.png fw.jsonl && test -s fw.png
'

test_expect_success 'af-infer: a missing, an extra or a wrong file is refused, naming it' '
	test_exit 1 af-infer --base "$BASE" $ABC --fusion "$SRC/h.st" "$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/h.st fuses fusion .a,b. (sha256 [0-9a-f]*…, file ab.st), but no --fusion-input file holds it$" err &&
	test_exit 1 af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" --fusion-input "$SRC/ac.st" \
		--fusion "$SRC/h.st" "$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/ab.st and $SRC/ac.st both fuse adapter .a. ($SRC/a.st): an adapter or fusion sits under one fusion only$" err &&
	test_exit 1 af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab2.st" --fusion "$SRC/h.st" \
		"$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/h.st: fusion .a,b.: $SRC/ab2.st has sha256 [0-9a-f]*…, but the fusion was trained with a file of sha256" err &&
	test_exit 1 af-infer --base "$BASE" --adapter "$SRC/a2.st" --adapter "$SRC/b.st" --adapter "$SRC/c.st" \
		--fusion-input "$SRC/ab.st" --fusion "$SRC/h.st" "$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/ab.st: adapter .a.: $SRC/a2.st has sha256" err &&
	test_exit 1 af-infer --base "$BASE" $ABC --fusion-input "$SRC/oab.st" --fusion "$SRC/h.st" \
		"$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/oab.st: trained on a different base" err &&
	test_exit 1 af-infer --base "$BASE" --adapter "$SRC/a.st" --adapter "$SRC/b.st" \
		--fusion-input "$SRC/ab.st" --fusion "$SRC/ab.st" "$SRC/dev.jsonl" >out 2>err &&
	test_grep "fuses adapters only: --fusion-input $SRC/ab.st is not under it" err &&
	test_exit 2 af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" "$SRC/dev.jsonl" 2>err &&
	test_grep "\-\-fusion-input .*: a fusion under which --fusion" err
'

test_expect_success 'af-fuse: refusals at every level, naming the file' '
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" --adapter "$SRC/c.st" \
		-o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/ab.st fuses adapter .a. (sha256 [0-9a-f]*…, file a.st), but no --adapter file holds it$" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" --adapter "$SRC/a2.st" \
		--adapter "$SRC/b.st" --adapter "$SRC/c.st" -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/ab.st: adapter .a.: $SRC/a2.st has sha256" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" --fusion-input "$SRC/ac.st" \
		$ABC -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/ab.st and $SRC/ac.st both fuse adapter .a. ($SRC/a.st): an adapter or fusion sits under one fusion only$" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/oab.st" $ABC -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/oab.st: trained on a different base" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" --fusion-input "$SRC/ab.st" \
		$ABC -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "are the same fusion" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/a.st" $ABC -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "^af-fuse: $SRC/a.st: not an af fusion file" err &&
	test_exit 1 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" --adapter "$SRC/a.st" \
		--adapter "$SRC/b.st" -o x.st "$SRC/abc.jsonl" 2>err &&
	test_grep "fusion needs at least 2 inputs, 1 found" err &&
	test_exit 2 af-fuse $FZ --name x --fusion-input "$SRC/ab.st" -o x.st 2>err &&
	test_grep "no --adapter given" err &&
	! test -e x.st
'

test_expect_success 'three levels: a fusion over the hierarchical fusion and another adapter' '
	af-train-adapter --base "$BASE" --threads 1 --epochs 1 -q --name d -o d.st "$SRC/a.jsonl" &&
	af-fuse $FZ --name top --epochs 2 --fusion-input "$SRC/h.st" --fusion-input "$SRC/ab.st" \
		$ABC --adapter d.st --method weighted -o top.st "$SRC/abc.jsonl" &&
	test "$(meta top.st config.adapter_names)" = "[\"((a,b),c)\", \"d\"]" &&
	test "$(meta top.st tree.0.inputs.0.inputs.0.adapter)" = a &&
	af-infer --base "$BASE" $ABC --adapter d.st --fusion-input "$SRC/h.st" \
		--fusion-input "$SRC/ab.st" --fusion top.st --fusion-weights "$SRC/dev.jsonl" >fw.jsonl &&
	test $(wc -l <fw.jsonl) = 128 &&
	test_grep "\"levels\":\[{\"fusion\":\"a,b\",.*},{\"fusion\":\"(a,b),c\",\"adapters\":\[\"(a,b)\",\"c\"\]" fw.jsonl &&
	af-inspect --fusion-weights fw.jsonl >out &&
	test_grep "^fusion (a,b),c: fusion weights" out &&
	af-inspect top.st >out && test_grep "^weighted fusion ((a,b),c),d: softmax of the weights" out &&
	test_exit 1 af-infer --base "$BASE" $ABC --adapter d.st --fusion-input "$SRC/h.st" \
		--fusion top.st "$SRC/dev.jsonl" >out 2>err &&
	test_grep "^af-infer: $SRC/h.st fuses fusion .a,b. (sha256 [0-9a-f]*…, file ab.st), but no --fusion-input file holds it$" err
'

test_expect_success '--unfreeze-adapters trains every adapter under the tree, not the inner fusion' '
	af-fuse $FZ --name abc --epochs 2 --fusion-input "$SRC/ab.st" $ABC --unfreeze-adapters \
		--adapter-lr 1e-2 -o u.st "$SRC/abc.jsonl" &&
	test "$(meta u.st config.adapters_updated)" = 1 &&
	af-inspect u.st >out &&
	test_grep "layer.0.output.adapters.a.adapter_up.weight" out &&
	test_grep "layer.1.output.adapters.c.adapter_down.0.weight" out &&
	! grep -q "adapter_fusion_layer.a,b\." out &&
	af-inspect --diff u.st "$SRC/a.st" >diff || true &&
	test_grep "adapters.a.adapter_up.weight  *[0-9]" diff &&
	af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" --fusion u.st "$SRC/dev.jsonl" >u.out &&
	af-fuse $FZ --name abc --epochs 2 --fusion-input "$SRC/ab.st" $ABC -o f.st "$SRC/abc.jsonl" &&
	af-infer --base "$BASE" $ABC --fusion-input "$SRC/ab.st" --fusion f.st "$SRC/dev.jsonl" >f.out &&
	! cmp -s u.out f.out
'

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

test_expect_success 'a fusion input trained with --unfreeze-adapters brings its adapters' '
	af-fuse $FZ --name ab --epochs 1 --adapter "$SRC/a.st" --adapter "$SRC/b.st" \
		--unfreeze-adapters --adapter-lr 1e-2 -o abu.st "$SRC/ab.jsonl" &&
	af-fuse $FZ --name abc --epochs 1 --lr 0 --fusion-input abu.st $ABC --unfreeze-adapters \
		--adapter-lr 0 -o k.st "$SRC/abc.jsonl" &&
	t=bert.encoder.layer.1.output.adapters.a.adapter_up.weight &&
	test -n "$(st_tensor abu.st $t)" &&
	test "$(st_tensor k.st $t)" = "$(st_tensor abu.st $t)" &&
	test "$(st_tensor k.st $t)" != "$(st_tensor "$SRC/a.st" $t)" &&
	c=bert.encoder.layer.1.output.adapters.c.adapter_up.weight &&
	test "$(st_tensor k.st $c)" = "$(st_tensor "$SRC/c.st" $c)"
'

test_expect_success 'the same seed gives the same tensors; --threads changes nothing' '
	af-fuse $FZ --name abc --epochs 2 --fusion-input "$SRC/ab.st" $ABC -o r1.st "$SRC/abc.jsonl" &&
	af-fuse $FZ --name abc --epochs 2 --fusion-input "$SRC/ab.st" $ABC -o r2.st --threads 2 \
		"$SRC/abc.jsonl" &&
	st_data r1.st >r1 && st_data r2.st >r2 && test -s r1 && cmp r1 r2
'

test_expect_success 'a fusion input that leaves out layers (--drop-layers) makes the fusion above leave them out' '
	af-fuse $FZ --name ab --epochs 1 --adapter "$SRC/a.st" --adapter "$SRC/b.st" --drop-layers 1 \
		-o abd.st "$SRC/ab.jsonl" &&
	af-fuse $FZ --name abc --epochs 1 --fusion-input abd.st $ABC -o hd.st "$SRC/abc.jsonl" &&
	test "$(meta hd.st config.leave_out)" = "[0]" &&
	af-inspect hd.st >out && ! grep -q "layer\.0\..*adapter_fusion_layer" out &&
	test_grep "layer\.1\.output\.adapter_fusion_layer\.(a,b),c\.query\.weight" out &&
	af-infer --base "$BASE" $ABC --fusion-input abd.st --fusion hd.st --fusion-weights \
		"$SRC/dev.jsonl" >fw.jsonl &&
	test_grep "\"layers\":\[null,\[.*\"levels\":\[{\"fusion\":\"a,b\",\"adapters\":\[\"a\",\"b\"\],\"layers\":\[null,\[" fw.jsonl &&
	af-inspect --fusion-weights --csv fw.jsonl >fw.csv &&
	test_grep "^\"a,b\",,0,a,$" fw.csv
'

test_expect_success 'af-convert --to-hub refuses a hierarchical fusion: AdapterHub has none' '
	test_exit 1 af-convert --to-hub hub "$SRC/h.st" 2>err &&
	test_grep "^af-convert: $SRC/h.st: a hierarchical fusion (a fusion over fusions, (a,b),c): AdapterHub fuses adapters only" err &&
	! test -e hub
'

test_done
