#!/bin/sh
# Multi-label heads end to end: a list label makes one (or --multilabel, --task NAME:multilabel),
# af-train-adapter learns it (micro-F1 and exact match on the dev set), the file records the
# kind, af-infer writes the predicted set and every label's probability and scores it; lines
# that do not fit the head are named.
. "$(dirname "$0")/lib.sh"

BASE=$FIXTURES/train/base # 2 layers, hidden 16, vocab 64, 16 positions

# gen_multilabel SEED N: N lines whose labels are a subset of {a, b}: "a" when the first tokens
# come from 5..33 (else 40..59), "b" when the last ones come from 34..39 (else 60..63), so any
# of the four sets occurs, the empty one included.
gen_multilabel() {
	awk -v seed="$1" -v n="$2" '
	function rnd() { x = (x * 16807) % 2147483647; return x / 2147483647 }
	BEGIN {
		x = seed
		for (i = 0; i < n; i++) {
			a = int(rnd() * 2); b = int(rnd() * 2); s = "[2"
			k = 2 + int(rnd() * 3)
			for (j = 0; j < k; j++) s = s "," (a ? 5 + int(rnd() * 29) : 40 + int(rnd() * 20))
			k = 2 + int(rnd() * 3)
			for (j = 0; j < k; j++) s = s "," (b ? 34 + int(rnd() * 6) : 60 + int(rnd() * 4))
			l = a && b ? "\"a\",\"b\"" : a ? "\"a\"" : b ? "\"b\"" : ""
			printf "{\"id\":%d,\"input_ids\":%s,3],\"label\":[%s]}\n", i, s, l
		}
	}'
}
D=$TEST_ROOT/data # shared by the tests, each of which runs in its own directory
mkdir -p "$D"
gen_multilabel 1 256 >"$D/train.jsonl"
gen_multilabel 77 128 >"$D/dev.jsonl"

train() {
	af-train-adapter --base "$BASE" --threads 1 --name ml --bottleneck 8 "$@"
}

test_expect_success 'list labels make a multi-label head, which learns (micro-F1 and exact match)' '
	train -o "$D/ml.st" --dev "$D/dev.jsonl" --epochs 30 --lr 2e-2 --log log.jsonl "$D/train.jsonl" 2>err &&
	test_grep "micro_f1 .* exact_match" err &&
	af-inspect --json "$D/ml.st" >j && tr -d " \n" <j >flat &&
	test_grep "\"heads\":{\"ml\":{\"kind\":\"multilabel\",\"labels\":\[\"a\",\"b\"\]}}" flat &&
	test_grep "\"metric\":\"micro_f1\"" flat &&
	head -n 1 log.jsonl >first && tail -n 1 log.jsonl >last &&
	f0=$(sed "s/.*\"micro_f1\":\([0-9.e-]*\).*/\1/" first) &&
	f1=$(sed "s/.*\"micro_f1\":\([0-9.e-]*\).*/\1/" last) &&
	x1=$(sed "s/.*\"exact_match\":\([0-9.e-]*\).*/\1/" last) &&
	awk -v a="$f0" -v b="$f1" -v x="$x1" "BEGIN { exit !(b > 0.8 && b > a && x > 0.6) }"
'

test_expect_success 'af-infer: the predicted set (sigmoid > 0.5) and the probabilities; --metrics scores them' '
	af-infer --base "$BASE" --adapter "$D/ml.st" --metrics --metrics-json m.json "$D/dev.jsonl" >out 2>err &&
	test "$(wc -l <out)" -eq 128 &&
	head -n 1 out >l1 && test_grep "^{\"id\":0,\"gold\":\[[^]]*\],\"labels\":\[[^]]*\],\"probs\":\[[0-9.e-]*,[0-9.e-]*\]}$" l1 &&
	awk "{ match(\$0, /\"probs\":\[[^]]*\]/); split(substr(\$0, RSTART + 9, RLENGTH - 10), p, \",\")
	       want = (p[1] > 0.5 ? \"\\\"a\\\"\" : \"\") (p[1] > 0.5 && p[2] > 0.5 ? \",\" : \"\") (p[2] > 0.5 ? \"\\\"b\\\"\" : \"\")
	       match(\$0, /\"labels\":\[[^]]*\]/); got = substr(\$0, RSTART + 10, RLENGTH - 11)
	       if (got != want) { print NR \": \" got \" vs \" want; bad = 1 } }
	     END { exit bad }" out &&
	tr -d " \n" <m.json >flat && test_grep "\"ml\":{\"examples\":128,\"loss\":[0-9.e-]*,\"micro_f1\":[0-9.e-]*,\"exact_match\":[0-9.e-]*,\"labels\":\[\"a\",\"b\"\]}" flat &&
	test_grep "micro_f1" err
'

test_expect_success 'af-infer --metrics agrees with the dev evaluation of training' '
	train -o l0.st --dev "$D/dev.jsonl" --epochs 1 --lr 0 --log log0.jsonl "$D/train.jsonl" 2>/dev/null &&
	af-infer --base "$BASE" --adapter l0.st --metrics-json m0.json "$D/dev.jsonl" >/dev/null &&
	tr -d " \n" <m0.json >flat &&
	for k in micro_f1 exact_match dev_loss; do
		a=$(sed "s/.*\"$k\":\([0-9.e-]*\).*/\1/" log0.jsonl) &&
		b=$(sed "s/.*\"${k#dev_}\":\([0-9.e-]*\).*/\1/" flat) &&
		awk -v a="$a" -v b="$b" "BEGIN { d = a - b; exit !(a != \"\" && d < 1e-6 && d > -1e-6) }" ||
		{ echo "$k: $a vs $b" && exit 1; }
	done
'

test_expect_success '--multilabel and --task NAME:multilabel:a,b,c name the labels; the order is kept' '
	train -o m2.st --multilabel --labels b,a,c --epochs 1 --lr 0 "$D/train.jsonl" 2>/dev/null &&
	af-inspect --json m2.st | tr -d " \n" >flat &&
	test_grep "\"ml\":{\"kind\":\"multilabel\",\"labels\":\[\"b\",\"a\",\"c\"\]}" flat &&
	sed "s/^{/{\"task\":\"t1\",/" "$D/train.jsonl" >mt.jsonl &&
	gen_separable 3 64 | sed "s/^{/{\"task\":\"t2\",/" >>mt.jsonl &&
	train -o m3.st --task t1:multilabel:x,a,b --epochs 1 --lr 0 mt.jsonl 2>/dev/null &&
	af-inspect --json m3.st | tr -d " \n" >flat &&
	test_grep "\"t1\":{\"kind\":\"multilabel\",\"labels\":\[\"x\",\"a\",\"b\"\]},\"t2\":\[\"neg\",\"pos\"\]" flat &&
	train -o m4.st --task t1:multilabel --epochs 1 --lr 0 mt.jsonl 2>/dev/null &&
	af-inspect --json m4.st | tr -d " \n" >flat &&
	test_grep "\"t1\":{\"kind\":\"multilabel\",\"labels\":\[\"a\",\"b\"\]}" flat
'

test_expect_success 'labels that do not fit the head are named with the line' '
	head -n 3 "$D/train.jsonl" >bad.jsonl && echo "{\"input_ids\":[2,5,3],\"label\":[\"a\",\"zz\"]}" >>bad.jsonl &&
	test_exit 1 train -o x.st --multilabel --labels a,b bad.jsonl 2>err &&
	test_grep "bad.jsonl:4: label\[1\] \"zz\" is not one of task ml.s 2 labels" err &&
	head -n 3 "$D/train.jsonl" >bad.jsonl && echo "{\"input_ids\":[2,5,3],\"label\":\"a\"}" >>bad.jsonl &&
	test_exit 1 train -o x.st bad.jsonl 2>err &&
	test_grep "bad.jsonl:4: task ml is multi-label: the label must be a list of names" err &&
	gen_separable 3 8 >cls.jsonl && af-train-adapter --base "$BASE" --name c --epochs 1 --lr 0 -o c.st cls.jsonl 2>/dev/null &&
	echo "{\"input_ids\":[2,5,3],\"label\":[\"pos\"]}" >>cls.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter c.st --metrics cls.jsonl >/dev/null 2>err &&
	test_grep "cls.jsonl:9: the label is a list, but task c is not multi-label" err &&
	echo "{\"input_ids\":[2,5,3],\"label\":[\"a\",\"a\"]}" >dup.jsonl &&
	test_exit 1 train -o x.st dup.jsonl 2>err && test_grep "dup.jsonl:1: label\[1\]: \"a\" is in the list twice" err &&
	echo "{\"input_ids\":[2,5,3],\"label\":[]}" >none.jsonl &&
	test_exit 1 train -o x.st none.jsonl 2>err && test_grep "task ml: no labels in the training data; give --labels" err &&
	test_exit 1 af-infer --base "$BASE" --adapter "$D/ml.st" --metrics cls.jsonl >/dev/null 2>err &&
	test_grep "cls.jsonl:1: task ml is multi-label: the label must be a list of names" err &&
	! test -e x.st
'

test_expect_success 'af-fuse trains a multi-label head over two adapters; af-infer reads the fusion' '
	I=$FIXTURES/infer && E=$FIXTURES/encoder/f32 &&
	af-fuse --base "$E" --threads 1 --adapter "$I/a.safetensors" --adapter "$I/b.safetensors" \
		--name t --epochs 2 --lr 1e-3 --dev "$D/dev.jsonl" -o f.st "$D/train.jsonl" 2>err &&
	test_grep "micro_f1 .* exact_match" err &&
	af-inspect --json f.st | tr -d " \n" >flat &&
	test_grep "\"t\":{\"kind\":\"multilabel\",\"labels\":\[\"a\",\"b\"\]}" flat &&
	af-infer --base "$E" --adapter "$I/a.safetensors" --adapter "$I/b.safetensors" --fusion f.st \
		--metrics "$D/dev.jsonl" >out 2>err &&
	test "$(grep -c "\"labels\":\[" out)" -eq 128 && test_grep "t: loss .* micro_f1" err
'

test_expect_success 'usage: --regression with --multilabel; a metric of another kind' '
	test_exit 2 train -o x.st --regression --multilabel "$D/train.jsonl" 2>err &&
	test_grep "\-\-regression and \-\-multilabel exclude each other" err &&
	test_exit 2 train -o x.st --metric accuracy "$D/train.jsonl" 2>err &&
	test_grep "metric .accuracy. is for classification; a multi-label task has micro_f1, exact_match" err &&
	train -o x.st --metric exact_match --epochs 1 --lr 0 "$D/train.jsonl" 2>/dev/null && test -s x.st
'

test_done
