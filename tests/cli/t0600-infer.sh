#!/bin/sh
# af-infer: parity with PyTorch, pass-through, streaming order, refusing the wrong files, bad lines,
# metrics (equal to af-fuse's for the same dev set), fusion weights.
. "$(dirname "$0")/lib.sh"
BASE=$FIXTURES/encoder/f32
IN=$FIXTURES/infer

# gen NAME N SEED: synthetic tokenized lines; "a" labels by the parity of the token sum, "t" by
# the first token (three classes).
gen() {
	awk -v name="$1" -v n="$2" -v seed="$3" 'BEGIN {
		srand(seed)
		for (i = 0; i < n; i++) {
			len = 3 + int(rand() * 10); ids = "2"; sum = 0
			for (k = 1; k < len - 1; k++) { t = 4 + int(rand() * 60); ids = ids "," t; sum += t
				if (k == 1) first = t }
			ids = ids ",3"
			if (name == "a") lab = sum % 2 ? "pos" : "neg"
			else if (name == "b") lab = first > 33 ? "hi" : "lo"
			else lab = substr("pqr", first % 3 + 1, 1)
			printf "{\"id\":\"%s%d\",\"input_ids\":[%s],\"label\":\"%s\"}\n", name, i, ids, lab
		}
	}'
}

test_expect_success 'parity with PyTorch: one adapter, its classification head' '
	for bs in 1 3 32; do
		af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size $bs "$IN/in.jsonl" >out &&
		numbers out >got && numbers_close "$IN/a.expected" got || return 1
	done
'

test_expect_success 'parity with PyTorch: one adapter, a regression head' '
	af-infer --base "$BASE" --adapter "$IN/b.safetensors" --batch-size 4 "$IN/in.jsonl" >out &&
	test_grep "\"score\":" out && ! grep -q probs out &&
	numbers out >got && numbers_close "$IN/b.expected" got
'

test_expect_success 'parity with PyTorch: attention fusion (T 1.5) and its weights per layer' '
	for bs in 1 2 32; do
		af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
			--fusion "$IN/ab.safetensors" --fusion-weights --batch-size $bs "$IN/in.jsonl" >out &&
		numbers out >got && numbers_close "$IN/ab.expected" got || return 1
	done
'

test_expect_success 'parity with PyTorch: Houlsby adapters, gating fusion, both sites, regression' '
	af-infer --base "$BASE" --adapter "$IN/c.safetensors" --adapter "$IN/d.safetensors" \
		--fusion "$IN/cd.safetensors" --fusion-weights --batch-size 4 "$IN/in.jsonl" >out &&
	test_grep "\"attention_layers\":\[\[" out &&
	numbers out >got && numbers_close "$IN/cd.expected" got
'

test_expect_success 'the comparison can fail' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" "$IN/in.jsonl" >out &&
	numbers out >got && ! numbers_close "$IN/ab.expected" got >/dev/null &&
	sed "1s/^0\.6/0.7/" "$IN/a.expected" >wrong && ! numbers_close wrong got >/dev/null &&
	head -n 3 "$IN/a.expected" >short && ! numbers_close short got >/dev/null
'

test_expect_success 'the adapter files may come in any order; the fusion record orders them' '
	af-infer --base "$BASE" --adapter "$IN/b.safetensors" --adapter "$IN/a.safetensors" \
		--fusion "$IN/ab.safetensors" --fusion-weights "$IN/in.jsonl" >out &&
	numbers out >got && numbers_close "$IN/ab.expected" got &&
	test_grep "\"adapters\":\[\"a\",\"b\"\]" out
'

test_expect_success 'input keys pass through verbatim, the label as "gold"; token arrays do not' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" "$IN/in.jsonl" >out &&
	test $(wc -l <out) -eq 6 &&
	sed -n 2p out >l2 &&
	test_grep "^{\"id\":2,\"gold\":\"neg\",\"note\":{\"k\":\[1,2.5\]},\"label\":\"neg\",\"label_id\":0,\"probs\":\[" l2 &&
	test_grep "^{\"id\":\"padded\",\"x\":null,\"label\":" out &&
	test_grep "^{\"id\":\"short\",\"gold\":1," out &&
	! grep -q input_ids out && ! grep -q token_type_ids out && ! grep -q attention_mask out &&
	printf "%s\n" "{\"input_ids\":[2,3],\"x\\u0041\":1,\"x\\\\u0041\":2.50,\"n\":1.50,\"probs\":7}" >esc.jsonl &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" esc.jsonl >out &&
	test_grep "^{\"xA\":1,\"x\\\\\\\\u0041\":2.5,\"n\":1.50,\"label\":\"neg\",\"label_id\":0,\"probs\":\[" out
'

test_expect_success 'output keeps input order across batches; stdin, "-" and gzip alike' '
	gen a 23 5 >in.jsonl &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 4 in.jsonl >out &&
	sed "s/.*\"id\":\"\([a-z0-9]*\)\".*/\1/" in.jsonl >ids.want &&
	sed "s/.*\"id\":\"\([a-z0-9]*\)\".*/\1/" out >ids.got &&
	cmp ids.want ids.got &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 4 <in.jsonl >out2 && cmp out out2 &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 4 - <in.jsonl >out3 && cmp out out3 &&
	gzip -c in.jsonl >in.jsonl.gz &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 4 in.jsonl.gz >out4 && cmp out out4
'

test_expect_success 'a pipe that pauses gets its answers at once, not after a whole batch' '
	gen a 9 6 >in.jsonl &&
	rm -f in.fifo out.stream first.out && mkfifo in.fifo &&
	{ ( head -n 1 in.jsonl
	    i=0; while [ $i -lt 600 ] && [ ! -s out.stream ]; do sleep 0.05; i=$((i + 1)); done
	    cp out.stream first.out
	    tail -n +2 in.jsonl ) >in.fifo & } &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 32 in.fifo >out.stream &&
	wait &&
	test "$(wc -l <first.out)" = 1 && test_grep "^{\"id\":\"a0\"," first.out &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 32 in.jsonl >out.file &&
	numbers out.file >n.file && numbers out.stream >n.stream && numbers_close n.file n.stream
'

test_expect_success '--fusion-weights=tokens: one row per real token; their mean is the mean' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--fusion "$IN/ab.safetensors" --fusion-weights=tokens "$IN/in.jsonl" >out &&
	grep "\"id\":\"padded\"" out >padded &&
	test_grep "\"layers\":\[\[\[[^]]*\],\[[^]]*\],\[[^]]*\],\[[^]]*\]\],\[\[" padded &&
	af-inspect --fusion-weights --csv out >tok.csv &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--fusion "$IN/ab.safetensors" --fusion-weights "$IN/in.jsonl" |
		af-inspect --fusion-weights --csv - >mean.csv &&
	paste -d, tok.csv mean.csv | awk -F, "NR > 1 { d = \$4 - \$8; if (d < 0) d = -d; if (d > 1e-5) exit 1 }"
'

test_expect_success 'a fused adapter of the same name but other weights is refused, named' '
	gen b 8 3 >b.jsonl && af-train-adapter --base "$BASE" --name b --epochs 1 -o b-other.st -q b.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter b-other.st \
		--fusion "$IN/ab.safetensors" "$IN/in.jsonl" >out 2>err &&
	! test -s out &&
	test_grep "^af-infer: .*ab.safetensors: adapter .b.: b-other.st has sha256 [0-9a-f]*…, but the fusion was trained with a file of sha256" err
'

test_expect_success 'a fused adapter that is missing is named, with what was given' '
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/c.safetensors" \
		--fusion "$IN/ab.safetensors" "$IN/in.jsonl" >out 2>err &&
	! test -s out &&
	test_grep "ab.safetensors fuses adapter .b., but no --adapter file holds it (given: .*a.safetensors (a), .*c.safetensors (c))" err
'

test_expect_success 'an adapter trained on another base is refused' '
	gen a 8 3 >a.jsonl &&
	af-train-adapter --base "$FIXTURES/encoder/f16" --name a --epochs 1 -o a16.st -q a.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter a16.st "$IN/in.jsonl" >out 2>err &&
	test_grep "a16.st: trained on a different base" err
'

test_expect_success 'a truncated line: the lines before it are written, the error names the line' '
	head -n 5 "$IN/in.jsonl" >bad.jsonl &&
	head -c 25 "$IN/in.jsonl" >>bad.jsonl && echo >>bad.jsonl &&
	cat "$IN/in.jsonl" >>bad.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 2 bad.jsonl \
		>out 2>err &&
	test $(wc -l <out) -eq 5 &&
	head -n 5 "$IN/a.expected" >want && numbers out >got && numbers_close want got &&
	test_grep "^af-infer: bad.jsonl:6: not valid JSON" err && test $(wc -l <err) -eq 1 &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --batch-size 32 <bad.jsonl \
		>out 2>err &&
	test $(wc -l <out) -eq 5 && test_grep "^af-infer: stdin:6: not valid JSON" err
'

test_expect_success 'bad lines: token ids, token types, unknown task, a label the head lacks' '
	printf "{\"input_ids\":[2,3]}\n{\"input_ids\":[2,64,3]}\n" >v.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" v.jsonl >out 2>err &&
	test $(wc -l <out) -eq 1 &&
	test_grep "v.jsonl:2: input_ids\[1\]: token id 64 is outside the vocabulary \[0, 64)" err &&
	printf "{\"input_ids\":[2,3],\"token_type_ids\":[0,2]}\n" >t.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" t.jsonl 2>err &&
	test_grep "t.jsonl:1: token_type_ids\[1\]: 2 is outside \[0, 2)" err &&
	printf "{\"input_ids\":[2,3],\"task\":\"nope\"}\n" >k.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" k.jsonl 2>err &&
	test_grep "k.jsonl:1: task \"nope\": the model has no head for it" err &&
	printf "{\"input_ids\":[2,3],\"label\":\"maybe\"}\n" >l.jsonl &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" l.jsonl >out &&
	test_grep "\"gold\":\"maybe\"" out &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --metrics l.jsonl 2>err &&
	test_grep "l.jsonl:1: label \"maybe\" is not one of task sst.s 2 labels" err
'

test_expect_success '--metrics, --confusion, --metrics-json on the labelled lines' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --metrics --confusion \
		--metrics-json m.json "$IN/in.jsonl" >out 2>err &&
	test $(wc -l <out) -eq 6 &&
	test_grep "^af-infer: sst: loss [0-9.]*  accuracy 0.3333  f1 0.2500  mcc 0.0000  (3 examples)$" err &&
	test_grep "^af-infer: sst: confusion matrix (rows: gold, columns: predicted)$" err &&
	test_grep "^  neg   1   0$" err && test_grep "^  pos   2   0$" err &&
	test_grep "\"tasks\":{\"sst\":{\"examples\":3,\"loss\":[0-9.]*,\"accuracy\":0.333333" m.json &&
	test_grep "\"labels\":\[\"neg\",\"pos\"\],\"confusion\":\[\[1,0\],\[2,0\]\]" m.json &&
	sed "s/,\"label\":[^,}]*//" "$IN/in.jsonl" >unlabelled.jsonl &&
	af-infer --base "$BASE" --adapter "$IN/b.safetensors" --metrics unlabelled.jsonl >out 2>err &&
	test_grep "^af-infer: b: no line with a gold label" err &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/b.safetensors" --metrics "$IN/in.jsonl" \
		>out 2>err &&
	test_grep "in.jsonl:1: label \"pos\": task b is a regression, a number is expected" err
'

# Two adapters a.st, b.st and target data t.jsonl, dev.jsonl in the current directory.
train_ab() {
	gen a 48 11 >a.jsonl && gen b 48 12 >b.jsonl && gen t 64 13 >t.jsonl && gen t 40 14 >dev.jsonl &&
	af-train-adapter --base "$BASE" --name a --bottleneck 4 --epochs 2 -o a.st -q a.jsonl &&
	af-train-adapter --base "$BASE" --name b --bottleneck 4 --epochs 2 -o b.st -q b.jsonl
}

test_expect_success 'metrics equal what af-fuse reported for the same dev set' '
	train_ab &&
	for m in attention gating; do
		af-fuse --base "$BASE" --adapter a.st --adapter b.st --name t --method $m --lr 1e-3 \
			--epochs 3 --batch-size 16 --eval-batch-size 16 --dev dev.jsonl -o f.st t.jsonl 2>fuse.err &&
		grep "^dev .*best$" fuse.err | tail -n 1 | sed "s/^dev [^:]*:  //; s/  best$//" >want &&
		af-infer --base "$BASE" --adapter a.st --adapter b.st --fusion f.st --metrics \
			--batch-size 7 dev.jsonl 2>err >/dev/null &&
		sed "s/^af-infer: t: //" err >got &&
		test -s want && cmp want got || return 1
	done
'

test_expect_success 'fusion trained with --unfreeze-adapters: the adapters travel in the file' '
	train_ab &&
	af-fuse --base "$BASE" --adapter a.st --adapter b.st --name t --unfreeze-adapters --lr 1e-3 \
		--epochs 2 --batch-size 16 --dev dev.jsonl -o u.st t.jsonl 2>fuse.err &&
	grep "^dev .*best$" fuse.err | tail -n 1 | sed "s/^dev [^:]*:  //; s/  best$//" >want &&
	af-infer --base "$BASE" --adapter a.st --adapter b.st --fusion u.st --metrics dev.jsonl \
		2>err >/dev/null &&
	sed "s/^af-infer: t: //" err >got && cmp want got
'

test_expect_success 'several heads: the line picks with "task", or --task for all' '
	{ gen a 20 21 | sed "s/\"label\"/\"task\":\"a\",\"label\"/"
	  gen t 20 22 | sed "s/\"label\"/\"task\":\"t\",\"label\"/"; } >multi.jsonl &&
	af-train-adapter --base "$BASE" --name a --epochs 1 -o m.st -q multi.jsonl &&
	af-infer --base "$BASE" --adapter m.st multi.jsonl >out &&
	test $(grep -c "\"task\":\"a\",.*\"probs\":\[[^,]*,[^,]*\]" out) -eq 20 &&
	test $(grep -c "\"task\":\"t\",.*\"probs\":\[[^,]*,[^,]*,[^,]*\]" out) -eq 20 &&
	test_grep "^{\"id\":\"a0\",\"task\":\"a\",\"gold\":\"[a-z]*\",\"label\"" out &&
	sed "s/,\"task\":\"[at]\"//" multi.jsonl >notask.jsonl &&
	test_exit 1 af-infer --base "$BASE" --adapter m.st notask.jsonl >/dev/null 2>err &&
	test_grep "notask.jsonl:1: no \"task\" on the line, and the model has 2 heads (a, t): give --task" err &&
	af-infer --base "$BASE" --adapter m.st --task t notask.jsonl >out &&
	test $(grep -c "\"probs\":\[[^,]*,[^,]*,[^,]*\]" out) -eq 40 &&
	test_exit 1 af-infer --base "$BASE" --adapter m.st --task x notask.jsonl 2>err &&
	test_grep "^af-infer: --task x: m.st has no such head (heads: a, t)$" err
'

test_expect_success '--adapters picks among the files; a fusion needs exactly its own' '
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		"$IN/in.jsonl" 2>err &&
	test_grep "2 adapters (.*) but no --fusion" err &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--adapters b "$IN/in.jsonl" >out &&
	numbers out >got && numbers_close "$IN/b.expected" got &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--adapter "$IN/c.safetensors" --adapters b,a --fusion "$IN/ab.safetensors" "$IN/in.jsonl" >out &&
	numbers out >got && cut -d"|" -f1 "$IN/ab.expected" | sed "s/ *$//" >want && numbers_close want got &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapter "$IN/b.safetensors" \
		--adapters a --fusion "$IN/ab.safetensors" "$IN/in.jsonl" 2>err &&
	test_grep "fuses .b. too; name every fused adapter" err &&
	test_exit 1 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --adapters z "$IN/in.jsonl" 2>err &&
	test_grep "no --adapter file holds .z." err
'

test_expect_success '--max-len truncates, with one warning' '
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" --max-len 4 "$IN/in.jsonl" >out 2>err &&
	test $(wc -l <out) -eq 6 &&
	test_grep "^af-infer: 4 of 6 lines are longer than 4 tokens and were truncated$" err &&
	af-infer --base "$BASE" --adapter "$IN/a.safetensors" -q --max-len 4 "$IN/in.jsonl" >out 2>err &&
	! test -s err
'

test_expect_success 'usage errors exit 2' '
	test_exit 2 af-infer --adapter "$IN/a.safetensors" 2>err && test_grep "base DIR is required" err &&
	test_exit 2 af-infer --base "$BASE" 2>err && test_grep "adapter FILE is required" err &&
	test_exit 2 af-infer --base "$BASE" --adapter "$IN/a.safetensors" --fusion-weights 2>err &&
	test_grep "needs a --fusion" err &&
	test_exit 2 af-infer --base "$BASE" --adapter x --fusion y --fusion-weights=some 2>err &&
	test_exit 2 af-infer --base "$BASE" --adapter x --batch-size 0 2>err &&
	test_exit 2 af-infer --base "$BASE" --adapter x a b 2>err && test_grep "is extra" err &&
	af-infer --help >out && test_grep "^Usage: af-infer" out &&
	af-infer --version >out && test_grep "^af-infer " out
'

test_done
