#!/bin/sh
# What a hostile or careless user feeds the programs: weights that are not finite (refused at
# load, naming the tensor), outputs that are not finite (an error, never a label picked from
# NaNs), bases that differ in a byte or a config key, FIFOs and link loops, hand-edited fusion
# metadata, names and labels that would collide in tensor names; a null label is no label.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64 (gen-train-fixtures.py)
SRC=$TEST_ROOT/src
mkdir -p "$SRC"
gen_separable 11 64 >"$SRC/a.jsonl"
(
	cd "$SRC" &&
	af-train-adapter --base $BASE --threads 1 --epochs 1 --bottleneck 4 -q --name a -o a.st a.jsonl &&
	af-train-adapter --base $BASE --threads 1 --epochs 1 --bottleneck 4 -q --name b -o b.st a.jsonl &&
	af-fuse --base $BASE --adapter a.st --adapter b.st --threads 1 --epochs 1 -q --name f -o f.st a.jsonl
) || echo "# setup failed: adapters missing"

# st_poke FILE TENSOR INDEX VALUE: sets one F32 value of a tensor in place.
st_poke() {
	python3 -c '
import json, struct, sys
path, name, i, v = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
b = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
t = json.loads(b[8:8 + n])[name]
assert t["dtype"] == "F32"
at = 8 + n + t["data_offsets"][0] + 4 * i
b[at:at + 4] = struct.pack("<f", v)
open(path, "wb").write(b)' "$@"
}

infer() { af-infer --base "$1" --adapter "$2" "$SRC/a.jsonl"; }

test_expect_success 'NaN in a base tensor: refused, naming it' '
	mkdir base && cp "$BASE"/* base/ &&
	st_poke base/model.safetensors bert.encoder.layer.1.attention.self.value.weight 5 nan &&
	test_exit 1 infer base "$SRC/a.st" >out 2>err &&
	test_grep "encoder.layer.1.attention.self.value.weight.*value 5 of 256 is NaN" err &&
	! test -s out
'

test_expect_success 'inf in the word embeddings (used in place): refused' '
	mkdir base && cp "$BASE"/* base/ &&
	st_poke base/model.safetensors bert.embeddings.word_embeddings.weight 40 inf &&
	test_exit 1 infer base "$SRC/a.st" >out 2>err &&
	test_grep "embeddings.word_embeddings.weight.*is inf" err
'

for t in adapter_down.0.weight adapter_up.weight; do
	test_expect_success "NaN in an adapter's $t: refused" '
		cp "$SRC/a.st" a.st &&
		st_poke a.st bert.encoder.layer.0.output.adapters.a.'$t' 0 nan &&
		test_exit 1 infer $BASE a.st >out 2>err &&
		test_grep "'$t'.*NaN" err
	'
done

test_expect_success 'NaN in a head: refused' '
	cp "$SRC/a.st" a.st &&
	st_poke a.st heads.a.4.weight 1 nan &&
	test_exit 1 infer $BASE a.st >out 2>err &&
	test_grep "heads.a.4.weight.*NaN" err
'

test_expect_success 'an output that overflows is an error naming the line' '
	cp "$SRC/a.st" a.st &&
	for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
		st_poke a.st heads.a.1.bias $i 3e38 && st_poke a.st heads.a.4.weight $i 3e38 || return 1
	done &&
	head -3 "$SRC/a.jsonl" >three.jsonl &&
	test_exit 1 af-infer --base $BASE --adapter a.st three.jsonl >out 2>err &&
	test_grep "three.jsonl:1: the model.s output is" err &&
	! test -s out
'

for change in '"hidden_act": "gelu_new"' '"num_attention_heads": 4' '"layer_norm_eps": 1e-6'; do
	test_expect_success "a base whose config.json says $change: the adapter is refused" '
		mkdir base && cp "$BASE"/* base/ &&
		python3 -c "
import json, sys
c = json.load(open(\"base/config.json\"))
c.update(json.loads(\"{\" + sys.argv[1] + \"}\"))
json.dump(c, open(\"base/config.json\", \"w\"))" '"'$change'"' &&
		test_exit 1 infer base "$SRC/a.st" >out 2>err &&
		test_grep "trained on a different base" err
	'
done

test_expect_success 'a base with one weight changed in the middle of the file: refused' '
	mkdir base && cp "$BASE"/* base/ &&
	st_poke base/model.safetensors bert.encoder.layer.0.intermediate.dense.weight 100 0.5 &&
	test_exit 1 infer base "$SRC/a.st" >out 2>err &&
	test_grep "trained on a different base" err &&
	python3 -c "import json; c = json.load(open(\"base/config.json\")); c[\"hidden_dropout_prob\"] = 0.3; json.dump(c, open(\"b2\", \"w\"))" &&
	cp "$BASE/model.safetensors" base/ && mv b2 base/config.json &&
	infer base "$SRC/a.st" >out &&
	test -s out
'

test_expect_success 'a FIFO as the weights, an adapter or config.json: refused at once' '
	mkfifo fifo && mkdir base && cp "$BASE"/* base/ && rm base/model.safetensors &&
	mkfifo base/model.safetensors &&
	test_exit 1 timeout 20 af-infer --base base --adapter "$SRC/a.st" </dev/null 2>err &&
	test_grep "base/model.safetensors: not a regular file" err &&
	test_exit 1 timeout 20 af-infer --base $BASE --adapter fifo </dev/null 2>err &&
	test_grep "fifo: not a regular file" err &&
	mkdir base2 && cp "$BASE"/* base2/ && rm base2/config.json && mkfifo base2/config.json &&
	test_exit 1 timeout 20 af-infer --base base2 --adapter "$SRC/a.st" </dev/null 2>err &&
	test_grep "base2/config.json: not a regular file" err
'

test_expect_success 'a symbolic link loop is named as one' '
	ln -s loop loop &&
	test_exit 1 af-infer --base $BASE --adapter loop </dev/null 2>err &&
	test_grep "loop: Too many levels of symbolic links" err &&
	test_exit 1 af-infer --base $BASE --adapter "$SRC/a.st" loop 2>err &&
	test_grep "loop: Too many levels of symbolic links" err &&
	mkdir m && printf "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhi\n" >m/vocab.txt &&
	ln -s t2 m/tokenizer_config.json && ln -s tokenizer_config.json m/t2 &&
	echo hi | test_exit 1 af-tokenize --model m 2>err &&
	test_grep "m/tokenizer_config.json: Too many levels of symbolic links" err &&
	rm m/tokenizer_config.json && mkfifo m/tokenizer_config.json &&
	echo hi | test_exit 1 timeout 20 af-tokenize --model m 2>err &&
	test_grep "tokenizer_config.json: not a regular file" err
'

# st_config FILE KEY JSON: sets (or with JSON "DELETE", removes) one key of the file's config
# metadata, rewriting the header in place of the old one.
st_config() {
	python3 -c '
import json, struct, sys
path, key, val = sys.argv[1], sys.argv[2], sys.argv[3]
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
c = json.loads(h["__metadata__"]["config"])
if val == "DELETE":
    c.pop(key, None)
else:
    c[key] = json.loads(val)
h["__metadata__"]["config"] = json.dumps(c)
t = json.dumps(h).encode()
t += b" " * (-len(t) % 8)
open(path, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])' "$@"
}

for v in 0 -1 '"abc"' 1e-40 null; do
	test_expect_success "a fusion file whose temperature is $v: refused" '
		cp "$SRC/f.st" f.st &&
		st_config f.st temperature '"'$v'"' &&
		test_exit 1 af-infer --base $BASE --adapter "$SRC/a.st" --adapter "$SRC/b.st" --fusion f.st \
			"$SRC/a.jsonl" >out 2>err &&
		test_grep "f.st: config.temperature: a number in \[0.001, 1e+06\] expected" err
	'
done

test_expect_success 'fusion metadata: a bad gate or anneal flag is refused; no temperature means 1' '
	cp "$SRC/f.st" f.st && st_config f.st temperature_anneal "\"yes\"" &&
	fi="af-infer --base $BASE --adapter $SRC/a.st --adapter $SRC/b.st" &&
	test_exit 1 $fi --fusion f.st "$SRC/a.jsonl" >out 2>err &&
	test_grep "config.temperature_anneal: true or false expected" err &&
	cp "$SRC/f.st" f.st && st_config f.st temperature DELETE &&
	$fi --fusion f.st "$SRC/a.jsonl" >out && test -s out
'

train1="af-train-adapter --base $BASE --threads 1 --epochs 1 -q"
for name in '""' 'b,c' 'a.b' '"a	b"' '-x'; do
	test_expect_success "--name $name: refused (exit 2)" '
		test_exit 2 $train1 --name '"$name"' -o o.st "$SRC/a.jsonl" 2>err &&
		test_grep "name .*letters, digits" err && ! test -e o.st
	'
done

test_expect_success 'options that cannot work are usage errors (exit 2)' '
	test_exit 2 $train1 --name x --adam-eps 0 -o o.st "$SRC/a.jsonl" 2>err &&
	test_grep "adam-eps: .0. is not a number in" err &&
	test_exit 2 $train1 --name x --reduction-factor 1000 -o o.st "$SRC/a.jsonl" 2>err &&
	test_grep "reduction-factor 1000 exceeds the base.s hidden size 16" err &&
	test_exit 2 $train1 --name x --bottleneck 17 -o o.st "$SRC/a.jsonl" 2>err &&
	for p in af-infer af-fuse af-train-adapter af-pretrain af-tokenize; do
		test_exit 2 $p --frobnicate 2>err && test "$(wc -l <err)" -eq 2 &&
		test_grep "unrecognized option .--frobnicate." err || return 1
	done &&
	! test -e o.st
'

test_expect_success 'labels: empty, twice, with a tab; task names as names' '
	test_exit 1 $train1 --name x --labels "neg,,pos" -o o.st "$SRC/a.jsonl" 2>err &&
	test_grep "label 2 is empty" err &&
	test_exit 1 $train1 --name x --labels "neg,pos,neg" -o o.st "$SRC/a.jsonl" 2>err &&
	test_grep "label .neg. is given twice" err &&
	sed "s/\"neg\"/\"n\\\\teg\"/" "$SRC/a.jsonl" >tab.jsonl &&
	test_exit 1 $train1 --name x -o o.st tab.jsonl 2>err &&
	test_grep "holds a control character" err &&
	sed "s/^{/{\"task\":\"t.1\",/" "$SRC/a.jsonl" >task.jsonl &&
	test_exit 1 $train1 --name x -o o.st task.jsonl 2>err &&
	test_grep "task name \"t.1\"" err && ! test -e o.st
'

test_expect_success 'an adapter file whose name has a comma: refused on load' '
	cp "$SRC/a.st" a.st &&
	python3 -c "
import json, struct
b = open(\"a.st\", \"rb\").read()
n = struct.unpack(\"<Q\", b[:8])[0]
h = json.loads(b[8:8 + n])
h[\"__metadata__\"][\"name\"] = \"a,b\"
t = json.dumps(h).encode()
t += b\" \" * (-len(t) % 8)
open(\"a.st\", \"wb\").write(struct.pack(\"<Q\", len(t)) + t + b[8 + n:])" &&
	test_exit 1 infer $BASE a.st >out 2>err &&
	test_grep "a.st: adapter name \"a,b\"" err
'

test_expect_success 'OPENBLAS_CORETYPE holding back an AVX-512 CPU is said once, not with -q' '
	OPENBLAS_CORETYPE=Haswell infer $BASE "$SRC/a.st" >out 2>err &&
	if grep -q avx512f /proc/cpuinfo; then
		test "$(grep -c "note: OPENBLAS_CORETYPE=Haswell has OpenBLAS run its Haswell kernels" err)" -eq 1
	else
		! grep -q "note:" err
	fi &&
	OPENBLAS_CORETYPE=Haswell af-infer -q --base $BASE --adapter "$SRC/a.st" "$SRC/a.jsonl" >out 2>err &&
	! grep -q "note:" err &&
	infer $BASE "$SRC/a.st" >out 2>err && ! grep -q "note:" err
'

test_expect_success 'a null label is no label: no "gold" in the output' '
	printf "{\"input_ids\":[2,7,3],\"label\":null,\"id\":\"n\"}\n" >in.jsonl &&
	af-infer --base $BASE --adapter "$SRC/a.st" in.jsonl >out &&
	test_grep "\"id\":\"n\"" out && ! grep -q gold out
'

test_done
