#!/bin/sh
# af-inspect on fusion: weights piped in from af-infer, averaged and by gold label; a weighted
# fusion file's own weights; terminal shading and colour, CSV, JSON, PNG; --diff.
. "$(dirname "$0")/lib.sh"
BASE=$FIXTURES/encoder/f32
IN=$FIXTURES/infer
AB="--base $BASE --adapter $IN/a.safetensors --adapter $IN/b.safetensors --fusion $IN/ab.safetensors"
CD="--base $BASE --adapter $IN/c.safetensors --adapter $IN/d.safetensors --fusion $IN/cd.safetensors"

# gen N SEED: synthetic tokenized lines, labelled by the first token (three classes).
gen() {
	awk -v n="$1" -v seed="$2" 'BEGIN {
		srand(seed)
		for (i = 0; i < n; i++) {
			len = 3 + int(rand() * 10); ids = "2"
			for (k = 1; k < len - 1; k++) { t = 4 + int(rand() * 60); ids = ids "," t; if (k == 1) first = t }
			printf "{\"id\":%d,\"input_ids\":[%s,3],\"label\":\"%s\"}\n", i, ids, substr("pqr", first % 3 + 1, 1)
		}
	}'
}

# png_check FILE: the signature, every chunk's CRC, IHDR (8-bit RGB) first, IDAT inflating to
# height × (1 + 3 × width) bytes, IEND last; prints "W H".
png_check() {
	python3 -c '
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n", "signature"
pos, chunks = 8, []
while pos < len(d):
    n, t = struct.unpack(">I4s", d[pos:pos + 8])
    body = d[pos + 8:pos + 8 + n]
    crc = struct.unpack(">I", d[pos + 8 + n:pos + 12 + n])[0]
    assert zlib.crc32(t + body) == crc, "CRC of " + t.decode()
    chunks.append((t, body))
    pos += 12 + n
assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", [c[0] for c in chunks]
w, h, depth, ctype, comp, filt, inter = struct.unpack(">IIBBBBB", chunks[0][1])
assert (depth, ctype, comp, filt, inter) == (8, 2, 0, 0, 0)
raw = zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT"))
assert len(raw) == h * (1 + 3 * w), (len(raw), w, h)
print(w, h)
' "$1"
}

test_expect_success 'the pipeline af-infer --fusion-weights | af-inspect --fusion-weights -' '
	af-infer $AB --fusion-weights <"$IN/in.jsonl" | af-inspect --fusion-weights - >out 2>err &&
	! test -s err &&
	test_grep "^fusion weights: mean over 6 lines$" out &&
	test_grep "^layer  a        b$" out &&
	test_grep "^0      ░░ 0.380 ▓▓ 0.620$" out &&
	test_grep "^1      ██ 0.947    0.053$" out &&
	test_grep "^legend: " out &&
	af-infer $AB --fusion-weights <"$IN/in.jsonl" | af-inspect - >out2 && cmp out out2
'

test_expect_success 'the averages are the means of the PyTorch reference weights' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" | af-inspect --fusion-weights --csv >out.csv &&
	test_grep "^group,layer,adapter,value$" out.csv &&
	cut -d"|" -f2 "$IN/ab.expected" |
		awk "{ for (i = 1; i <= NF; i++) s[i] += \$i; n = NF } END { for (i = 1; i <= n; i++) print s[i] / NR }" >want &&
	sed 1d out.csv | cut -d, -f4 >got &&
	test $(wc -l <got) -eq 4 &&
	paste want got | awk "{ d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-4) exit 1 }" &&
	sed -n 2p out.csv | grep -q "^,0,a,"
'

test_expect_success '--by-label: all lines, then one map per gold label, unlabelled last' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" | af-inspect -w --by-label >out &&
	grep "^fusion weights\|^gold label" out >titles &&
	printf "%s\n" "fusion weights: mean over 6 lines" "gold label 1: mean over 1 line" \
		"gold label neg: mean over 1 line" "gold label pos: mean over 1 line" \
		"gold label (no label): mean over 3 lines" >want &&
	cmp want titles &&
	af-infer $AB --fusion-weights "$IN/in.jsonl" | af-inspect -w -b --csv >out.csv &&
	test $(grep -c "^neg," out.csv) -eq 4 && test $(grep -c "^(no label)," out.csv) -eq 4
'

test_expect_success 'Houlsby: both sites of every layer are rows; per-token weights average too' '
	af-infer $CD --fusion-weights=tokens "$IN/in.jsonl" | af-inspect -w >out &&
	test_grep "^layer   c        d$" out &&
	test_grep "^0 attn  " out && test_grep "^0 out   " out && test_grep "^1 out   " out
'

test_expect_success 'colour: 256 colours with --color always, 24-bit with COLORTERM, none else' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" >fw.jsonl &&
	af-inspect -w --color always fw.jsonl >c256 &&
	test_grep "$(printf "\033")\[48;5;[0-9]*m" c256 && ! grep -q "░" c256 &&
	COLORTERM=truecolor af-inspect -w --color=always fw.jsonl >c24 &&
	test_grep "$(printf "\033")\[48;2;[0-9]*;[0-9]*;[0-9]*m" c24 &&
	(unset NO_COLOR; af-inspect -w fw.jsonl >plain) &&
	! grep -q "$(printf "\033")" plain && test_grep "█" plain &&
	af-inspect -w --color never fw.jsonl >never && cmp plain never
'

test_expect_success '--json for programs' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" | af-inspect -w --json >out.json &&
	python3 -c "
import json
d = json.load(open(\"out.json\"))
assert d[\"rows\"] == [\"0\", \"1\"] and d[\"columns\"] == [\"a\", \"b\"], d
m = d[\"maps\"][0]
assert m[\"n\"] == 6 and m[\"group\"] is None and len(m[\"values\"]) == 2
assert abs(m[\"values\"][1][0] - 0.947) < 1e-3, m
"
'

test_expect_success '--png: a valid PNG (signature, CRCs, IHDR, image data), per label taller' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" >fw.jsonl &&
	af-inspect -w --png map.png fw.jsonl >out && ! test -s out &&
	test "$(od -An -c -N8 map.png | tr -d " ")" = "211PNG\r\n032\n" &&
	test "$(od -An -c -j12 -N4 map.png | tr -d " ")" = IHDR &&
	png_check map.png >size && read w h <size && test $w -gt 200 && test $h -gt 100 &&
	af-inspect -w --by-label --png by.png fw.jsonl && png_check by.png >size2 &&
	read w2 h2 <size2 && test $h2 -gt $((3 * h))
'

test_expect_success 'the PNG check can fail' '
	af-infer $AB --fusion-weights "$IN/in.jsonl" | af-inspect -w --png map.png &&
	head -c 100 map.png >cut.png && ! png_check cut.png 2>/dev/null &&
	{ head -c 40 map.png; printf x; tail -c +42 map.png; } >bad.png && ! png_check bad.png 2>/dev/null
'

test_expect_success 'a weighted fusion file: its own weights, equal to what af-infer reports' '
	gen 40 1 >t.jsonl &&
	af-fuse --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" --name t \
		--method weighted --lr 0.05 --epochs 4 --batch-size 8 -q -o w.st t.jsonl &&
	af-inspect w.st >out &&
	test_grep "^weighted fusion a,b: softmax of the weights in the file$" out &&
	af-inspect --csv w.st >file.csv &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--fusion w.st --fusion-weights t.jsonl | af-inspect -w --csv >infer.csv &&
	paste -d, file.csv infer.csv | awk -F, "NR > 1 { d = \$4 - \$8; if (d < 0) d = -d; if (d > 1e-5 || \$2 != \$6) exit 1 }" &&
	awk -F, "NR > 1 && \$4 == 0.5 { exit 1 }" file.csv &&
	af-inspect --png w.png w.st && png_check w.png >/dev/null &&
	af-inspect --json w.st >w.json && test_grep "\"fusion_weights\": {" w.json
'

test_expect_success 'an attention fusion file: how to see its weights; --png refuses' '
	af-inspect "$IN/ab.safetensors" >out &&
	test_grep "^fusion weights: attention fusion weighs the adapters per token, from the input; to see them:$" out &&
	test_grep "af-infer .* --fusion .*ab.safetensors --fusion-weights < DATA | af-inspect --fusion-weights -" out &&
	test_exit 1 af-inspect --png x.png "$IN/ab.safetensors" 2>err && ! test -e x.png &&
	test_grep "pass af-infer --fusion-weights output instead" err
'

test_expect_success 'bad input: lines without weights, weights of another model' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" "$IN/in.jsonl" >plain.jsonl &&
	test_exit 1 af-inspect -w plain.jsonl >out 2>err &&
	test_grep "^af-inspect: plain.jsonl:1: no \"fusion_weights\" (af-infer --fusion-weights writes them)$" err &&
	{ af-infer $AB --fusion-weights "$IN/in.jsonl"; af-infer $CD --fusion-weights "$IN/in.jsonl"; } >mixed.jsonl &&
	test_exit 1 af-inspect -w mixed.jsonl 2>err &&
	test_grep "mixed.jsonl:7: fusion_weights of another model" err &&
	echo "{\"fusion_weights\":{\"adapters\":[\"a\"],\"layers\":[[0.5,0.5]]}}" >wide.jsonl &&
	test_exit 1 af-inspect -w wide.jsonl 2>err &&
	test_grep "wide.jsonl:1: fusion_weights.layers\[0\]: 1 numbers (one per adapter) expected" err &&
	: >empty.jsonl && test_exit 1 af-inspect -w empty.jsonl 2>err &&
	test_grep "no line with fusion weights" err
'

test_expect_success 'hostile weight lines: errors, never a crash' '
	fw() { printf "{\"fusion_weights\":{\"adapters\":[\"a\",\"b\"],\"layers\":%s}}\n" "$1" >bad.jsonl; } &&
	fw "[]" && test_exit 1 af-inspect -w bad.jsonl 2>err &&
	test_grep "bad.jsonl:1: fusion_weights needs adapters and layers (2 and 0 found)" err &&
	fw "[[1e999,0]]" && test_exit 1 af-inspect -w bad.jsonl 2>err &&
	test_grep "bad.jsonl:1: fusion_weights.layers\[0\]: weight inf of adapter 1 is outside \[0, 1\]" err &&
	fw "[[-0.5,1.5]]" && test_exit 1 af-inspect -w bad.jsonl 2>err &&
	test_grep "weight -0.5 of adapter 1 is outside" err &&
	fw "[[[0.5,0.5],7]]" && test_exit 1 af-inspect -w bad.jsonl 2>err &&
	test_grep "token 1: an array of 2 weights expected" err &&
	printf "{\"fusion_weights\":{\"adapters\":[\"a\",3],\"layers\":[[0.5,0.5]]}}\n" >bad.jsonl &&
	test_exit 1 af-inspect -w bad.jsonl 2>err && test_grep "names expected" err
'

test_expect_success 'null weights (af-infer: not finite) are left out of the means' '
	{
		printf "{\"fusion_weights\":{\"adapters\":[\"a\",\"b\"],\"layers\":[[0.2,null],[0.4,0.6]]}}\n"
		printf "{\"fusion_weights\":{\"adapters\":[\"a\",\"b\"],\"layers\":[[0.4,null],[null,0.2]]}}\n"
	} >nulls.jsonl &&
	af-inspect -w --csv nulls.jsonl >out.csv &&
	test_grep "^,0,a,0.3" out.csv && test_grep "^,0,b,$" out.csv &&
	test_grep "^,1,a,0.4$" out.csv && test_grep "^,1,b,0.4" out.csv &&
	af-inspect -w nulls.jsonl >out.txt && test_grep " -" out.txt &&
	af-inspect -w --png nulls.png nulls.jsonl
'

test_expect_success '--diff: equal files, changed values, other shapes, tensors on one side' '
	af-inspect --diff "$IN/a.safetensors" "$IN/a.safetensors" >out &&
	test_grep "^tensors: 12 equal, 0 different, 0 of another shape, 0 only in A, 0 only in B$" out &&
	test_grep "^metadata: equal$" out &&
	gen 16 2 | sed "s/\"label\":\"[pqr]\"/\"label\":\"x\"/; 1,8s/\"x\"/\"y\"/" >l.jsonl &&
	af-train-adapter --base "$BASE" --name a --bottleneck 4 --epochs 1 --lr 0 -q -o lr0.st l.jsonl &&
	af-train-adapter --base "$BASE" --name a --bottleneck 4 --epochs 1 --lr 1e-2 -q -o lr1.st l.jsonl &&
	af-train-adapter --base "$BASE" --name a --bottleneck 2 --epochs 1 -q -o r2.st l.jsonl &&
	af-inspect --diff lr0.st lr1.st >out &&
	test_grep "^tensors: 0 equal, 12 different, 0 of another shape, 0 only in A, 0 only in B$" out &&
	test_grep "^  bert.encoder.layer.0.output.adapters.a.adapter_up.weight  *[0-9.e-]*  *[0-9.e-]*  *128 of 128$" out &&
	test_grep "^metadata that differs: training$" out &&
	af-inspect --diff lr0.st r2.st >out &&
	test_grep "^  bert.encoder.layer.0.output.adapters.a.adapter_down.0.weight  shape \[4, 32\] in A, \[2, 32\] in B$" out &&
	af-inspect --diff lr0.st "$IN/b.safetensors" >out &&
	test_grep "^tensors: 0 equal, 0 different, 0 of another shape, 12 only in A, 12 only in B$" out &&
	test_grep "^  heads.b.4.bias  *only in B$" out &&
	af-inspect --diff --json lr0.st lr1.st >d.json &&
	python3 -c "
import json
d = json.load(open(\"d.json\"))
assert d[\"counts\"] == {\"same\": 0, \"different\": 12, \"shape\": 0, \"only_a\": 0, \"only_b\": 0}, d[\"counts\"]
t = d[\"tensors\"][0]
assert t[\"status\"] == \"different\" and t[\"max_abs_diff\"] > 0 and 0 < t[\"rel_l2\"] < 10, t
assert d[\"metadata_differs\"] == [\"training\"]
"
'

test_expect_success 'usage errors exit 2' '
	test_exit 2 af-inspect --by-label "$IN/ab.safetensors" 2>err && test_grep "by-label is for" err &&
	test_exit 2 af-inspect --diff "$IN/a.safetensors" 2>err && test_grep "needs two files, 1 given" err &&
	test_exit 2 af-inspect -w --csv --json x 2>err && test_grep "exclude each other" err &&
	test_exit 2 af-inspect --color sometimes x 2>err &&
	test_exit 2 af-inspect --png a.png "$IN/ab.safetensors" "$IN/cd.safetensors" 2>err &&
	af-inspect --help >out && test_grep "fusion-weights" out
'

test_done
