#!/bin/sh
# af-infer runs a window of lines in batches of similar lengths and writes them in input order:
# the answers are those of one line at a time (to float rounding: padding differs), in order,
# with fusion weights too; a line without a finite output still comes after the lines before it.
. "$(dirname "$0")/lib.sh"
BASE=$FIXTURES/encoder/f32
IN=$FIXTURES/infer
AB="--base $BASE --adapter $IN/a.safetensors --adapter $IN/b.safetensors --fusion $IN/ab.safetensors"

# N lines of lengths 3..40 in a shuffled order, ids 0..N-1
gen() {
	awk -v n="$1" 'BEGIN {
		x = 7
		for (i = 0; i < n; i++) {
			x = (x * 16807) % 2147483647; len = 3 + x % 38; ids = "2"
			for (k = 1; k < len - 1; k++) { x = (x * 16807) % 2147483647; ids = ids "," (4 + x % 60) }
			printf "{\"id\":%d,\"input_ids\":[%s,3]}\n", i, ids
		}
	}'
}

# every number of two af-infer outputs within 1e-5, ids in the same order
same_answers() {
	python3 -c '
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0, (len(a), len(b))
def nums(v):
    if isinstance(v, list):
        for x in v: yield from nums(x)
    elif isinstance(v, (int, float)): yield v
for x, y in zip(a, b):
    assert x["id"] == y["id"] and x["label"] == y["label"], (x, y)
    for key in ("probs", "fusion_weights"):
        if key in x:
            p, q = list(nums(x[key] if key == "probs" else x[key]["layers"])), \
                   list(nums(y[key] if key == "probs" else y[key]["layers"]))
            assert len(p) == len(q) and max(abs(s - t) for s, t in zip(p, q)) < 1e-5, (x, y)
assert [x["id"] for x in a] == list(range(len(a)))' "$1" "$2"
}

test_expect_success 'mixed lengths: the answers of one line at a time, in input order' '
	gen 300 >in.jsonl &&
	af-infer $AB --fusion-weights in.jsonl >bucketed.jsonl &&
	af-infer $AB --fusion-weights --batch-size 1 in.jsonl >single.jsonl &&
	same_answers single.jsonl bucketed.jsonl
'

test_expect_success 'per-token fusion weights follow their lines too' '
	gen 80 >in.jsonl &&
	af-infer $AB --fusion-weights=tokens --batch-size 4 in.jsonl >bucketed.jsonl &&
	af-infer $AB --fusion-weights=tokens --batch-size 1 in.jsonl >single.jsonl &&
	python3 -c "
import json, sys
a = [json.loads(l) for l in open(\"single.jsonl\")]
b = [json.loads(l) for l in open(\"bucketed.jsonl\")]
for x, y in zip(a, b):
    assert x[\"id\"] == y[\"id\"]
    assert [len(t) for t in x[\"fusion_weights\"][\"layers\"]] == [len(t) for t in y[\"fusion_weights\"][\"layers\"]]
"
'

test_expect_success 'a bad line after a window of long and short lines: the lines before it first' '
	gen 50 >in.jsonl && echo "{\"input_ids\":[2,99999,3]}" >>in.jsonl && gen 5 >>in.jsonl &&
	test_exit 1 af-infer $AB in.jsonl >out.jsonl 2>err &&
	test "$(wc -l <out.jsonl)" -eq 50 &&
	test_grep "in.jsonl:51: input_ids" err
'

test_expect_success 'one adapter (a layer runs a few sequences at a time): one line at a time' '
	gen 300 >in.jsonl &&
	af-infer --base $BASE --adapter $IN/a.safetensors --batch-size 64 in.jsonl >grouped.jsonl &&
	af-infer --base $BASE --adapter $IN/a.safetensors --batch-size 1 in.jsonl >single.jsonl &&
	same_answers grouped.jsonl single.jsonl
'

# Inference runs a few sequences at a time through each layer, on two threads two groups at once
# (each with single-threaded products), and with a fusion whose weights nobody reads also the
# [CLS]-only last layer. The answers stay those of one thread and of the whole forward, to the
# last printed digit: not always bit for bit, since OpenBLAS picks its kernels (and so the order
# of a sum) by a product's shape, and a fusion's small products change shape with the group.
same_probs() {
	python3 -c '
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0 and [x["id"] for x in a] == [y["id"] for y in b]
d = max(abs(s - t) for x, y in zip(a, b) for s, t in zip(x["probs"], y["probs"]))
assert d <= 1.5e-6, d' "$1" "$2"
}

test_expect_success 'one thread or two, fusion weights read or not: the same probabilities' '
	gen 200 >t.jsonl &&
	for m in "--base $BASE --adapter $IN/a.safetensors" "$AB"; do
		af-infer $m --threads 1 --batch-size 16 t.jsonl >t1.jsonl &&
		af-infer $m --threads 2 --batch-size 16 t.jsonl >t2.jsonl &&
		same_probs t1.jsonl t2.jsonl || return 1
	done &&
	af-infer $AB --threads 2 --batch-size 16 --fusion-weights t.jsonl >fw.jsonl &&
	same_probs t2.jsonl fw.jsonl
'

# --weights: f32 is how an F32 base is held anyway (the same bytes); f16 and bf16 hold it rounded,
# which moves the probabilities a little and no more; anything else is a usage error
test_expect_success '--weights f32, f16, bf16 on an F32 base; a bad type is refused' '
	gen 40 >w.jsonl &&
	A1="--base $BASE --adapter $IN/a.safetensors" &&
	af-infer $A1 w.jsonl >plain.jsonl &&
	af-infer $A1 --weights f32 w.jsonl >f32.jsonl && cmp plain.jsonl f32.jsonl &&
	af-infer $A1 --weights f16 w.jsonl >f16.jsonl && af-infer $A1 --weights bf16 w.jsonl >bf16.jsonl &&
	! cmp -s plain.jsonl bf16.jsonl &&
	python3 -c "
import json, sys
a = [json.loads(l)[\"probs\"] for l in open(\"plain.jsonl\")]
for f in (\"f16.jsonl\", \"bf16.jsonl\"):
    b = [json.loads(l)[\"probs\"] for l in open(f)]
    d = max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p, q))
    assert len(a) == len(b) == 40 and d < 2e-2, (f, d)" &&
	test_exit 2 af-infer $A1 --weights f8 w.jsonl 2>err && test_grep "is not f32, f16 or bf16" err
'

test_expect_success 'fusion weights cover attended tokens only, also when --max-len cut them all' '
	printf "{\"input_ids\":[2,5,6,7,8,3],\"attention_mask\":[0,0,0,0,1,1]}\n" >cut.jsonl &&
	af-infer $AB --fusion-weights=tokens --max-len 3 cut.jsonl >tok.jsonl 2>/dev/null &&
	test_grep "\"layers\":\[\[\],\[\]\]" tok.jsonl &&
	af-infer $AB --fusion-weights --max-len 3 cut.jsonl >mean.jsonl 2>/dev/null &&
	test_grep "\"layers\":\[\[null,null\],\[null,null\]\]" mean.jsonl &&
	af-infer $AB --fusion-weights=tokens cut.jsonl >all.jsonl &&
	python3 -c "import json; l = json.load(open(\"all.jsonl\"))[\"fusion_weights\"][\"layers\"]; assert [len(t) for t in l] == [2, 2], l"
'

test_done
