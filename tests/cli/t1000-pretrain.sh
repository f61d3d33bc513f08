#!/bin/sh
# af-pretrain: options and errors, the output directory (BertForMaskedLM names, metadata),
# determinism, exact resume (checkpoint and Ctrl-C), --base, JSONL input, and that it learns.
. "$(dirname "$0")/lib.sh"

# A small synthetic corpus with structure a tiny model can learn in seconds: fixed phrases,
# so a masked word is predictable from its neighbours while the unigram guess is not.
D=$TEST_ROOT/data
mkdir -p "$D"
awk 'BEGIN {
	srand(7)
	split("cat dog bird fox horse mouse owl frog", a, " ")
	split("red blue green small big old young quick", b, " ")
	split("sat ran jumped slept walked swam flew hid", c, " ")
	split("mat log tree rock hill pond barn wall", d, " ")
	for (i = 0; i < 600; i++) {
		s = ""
		n = 2 + int(rand() * 3)
		for (j = 0; j < n; j++) {
			k = 1 + int(rand() * 8)
			s = s sprintf("the %s %s %s on the %s . ", b[k], a[k], c[k], d[1 + int(rand() * 8)])
		}
		print s > (i < 540 ? "'"$D"'/train.txt" : "'"$D"'/dev.txt")
	}
}'
af-tokenize --build-vocab 120 -q -o "$D/vocab.txt" "$D/train.txt"
SHAPE="--layers 1 --hidden 32 --heads 2 --ffn 64 --vocab $D/vocab.txt --max-len 32 --batch-size 8 --threads 1"
NEW="$SHAPE -q"

test_expect_success '--help and --version' '
	af-pretrain --help >out && test_grep "^usage: af-pretrain" out &&
	af-pretrain --version >out && test_grep "^af-pretrain " out
'
test_expect_success 'usage errors exit 2' '
	test_exit 2 af-pretrain $NEW "$D/train.txt" 2>err && test_grep "\-o DIR" err &&
	test_exit 2 af-pretrain --layers 1 --hidden 32 --heads 2 --ffn 64 -o m "$D/train.txt" 2>err &&
	test_grep "\-\-vocab" err &&
	test_exit 2 af-pretrain --base x --layers 2 -o m 2>err && test_grep "exclude" err &&
	test_exit 2 af-pretrain $NEW --hidden 30 --heads 4 -o m 2>err && test_grep "multiple" err &&
	test_exit 2 af-pretrain $NEW --steps 0 -o m 2>err &&
	test_exit 2 af-pretrain $NEW --max-len 600 -o m 2>err && test_grep "max-pos" err &&
	test_exit 2 af-pretrain $NEW --bogus -o m 2>err
'
test_expect_success 'runtime errors exit 1 and name the file' '
	test_exit 1 af-pretrain $NEW --steps 2 -o m nonexistent.txt 2>err &&
	test_grep "nonexistent.txt" err &&
	printf "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n" >nomask.txt &&
	test_exit 1 af-pretrain --layers 1 --hidden 8 --heads 1 --ffn 8 --vocab nomask.txt --steps 1 \
		-o m "$D/train.txt" 2>err && test_grep "MASK" err &&
	echo "a b" >tiny.txt &&
	test_exit 1 af-pretrain $NEW --steps 1 -o m tiny.txt 2>err && test_grep "fewer than one batch" err &&
	test ! -e m
'
test_expect_success 'a new model: a BertForMaskedLM directory' '
	af-pretrain $NEW --steps 5 -o m "$D/train.txt" &&
	test -f m/config.json && test -f m/model.safetensors && test -f m/tokenizer_config.json &&
	cmp m/vocab.txt "$D/vocab.txt" &&
	test_grep "BertForMaskedLM" m/config.json &&
	test_grep "\"hidden_size\":[[:space:]]*32" m/config.json &&
	head -c 12000 m/model.safetensors >hdr &&
	for t in cls.predictions.bias cls.predictions.transform.dense.weight \
		cls.predictions.transform.LayerNorm.weight bert.embeddings.word_embeddings.weight \
		bert.encoder.layer.0.attention.self.query.weight training created_by; do
		grep -q -a "\"$t\"" hdr || { echo "no $t"; exit 1; }
	done &&
	! grep -q -a "cls.predictions.decoder.weight" hdr &&
	ls -a | grep -v -q "tmp" &&
	test ! -e m.ckpt
'
test_expect_success '--f16 halves the file, F16 tensors' '
	af-pretrain $NEW --steps 2 -o a "$D/train.txt" &&
	af-pretrain $NEW --steps 2 --f16 -o b "$D/train.txt" &&
	head -c 12000 b/model.safetensors | grep -q -a "\"F16\"" &&
	! head -c 12000 b/model.safetensors | grep -q -a "\"F32\"" &&
	sa=$(wc -c <a/model.safetensors) && sb=$(wc -c <b/model.safetensors) &&
	test $((sb * 2)) -lt $((sa + 20000))
'
test_expect_success 'same seed, same bytes; another seed, other bytes; -o replaces' '
	af-pretrain $NEW --steps 6 --seed 3 -o a "$D/train.txt" &&
	af-pretrain $NEW --steps 6 --seed 3 -o b "$D/train.txt" &&
	cmp a/model.safetensors b/model.safetensors &&
	af-pretrain $NEW --steps 6 --seed 4 -o b "$D/train.txt" &&
	! cmp -s a/model.safetensors b/model.safetensors &&
	test "$(ls | wc -l)" -eq 2
'
test_expect_success 'resume from a checkpoint gives the same model as an uninterrupted run' '
	af-pretrain $NEW --steps 12 --accumulate 2 -o a "$D/train.txt" &&
	af-pretrain $NEW --steps 12 --accumulate 2 --save-every 5 -o b "$D/train.txt" &&
	cmp a/model.safetensors b/model.safetensors &&
	test -f b.ckpt/trainer.safetensors &&
	af-pretrain $NEW --steps 12 --accumulate 2 --resume --checkpoint b.ckpt -o c "$D/train.txt" &&
	cmp a/model.safetensors c/model.safetensors
'
test_expect_success 'a checkpoint of another run is refused' '
	af-pretrain $NEW --steps 12 --save-every 5 -o b "$D/train.txt" &&
	test_exit 1 af-pretrain $NEW --steps 12 --batch-size 4 --resume --checkpoint b.ckpt \
		-o c "$D/train.txt" 2>err &&
	test_grep "another run" err
'
# SIGTERM takes the same path as Ctrl-C (a shell without job control starts background commands
# with SIGINT ignored, and af leaves an ignored SIGINT ignored, as nohup expects).
test_expect_success 'a signal writes a checkpoint, exits 128+signal, and the run resumes' '
	{ af-pretrain $NEW --steps 1000000 -o m "$D/train.txt" 2>err & } &&
	pid=$! &&
	sleep 1 && kill -TERM $pid &&
	{ wait $pid; st=$?; } ;
	test "$st" -eq 143 && test_grep "interrupted at step" err &&
	s1=$(sed -n "s/.*interrupted at step \([0-9]*\).*/\1/p" err) &&
	test -f m.ckpt/trainer.safetensors && test ! -e m &&
	{ af-pretrain $NEW --steps 1000000 --resume -o m "$D/train.txt" 2>err & } &&
	pid=$! &&
	sleep 1 && kill -TERM $pid &&
	{ wait $pid; st=$?; } ;
	test "$st" -eq 143 &&
	s2=$(sed -n "s/.*interrupted at step \([0-9]*\).*/\1/p" err) &&
	echo "stopped at $s1, then at $s2" && test "$s2" -gt "$s1"
'
test_expect_success 'tokenized JSONL input trains the same model as the raw text' '
	af-tokenize --vocab "$D/vocab.txt" --max-len 0 --text 1 --tsv "$D/train.txt" >train.jsonl &&
	af-pretrain $NEW --steps 4 -o a "$D/train.txt" &&
	af-pretrain $NEW --steps 4 -o b train.jsonl &&
	cmp a/model.safetensors b/model.safetensors &&
	gzip -c "$D/train.txt" >train.txt.gz &&
	af-pretrain $NEW --steps 4 -o c train.txt.gz &&
	cmp a/model.safetensors c/model.safetensors
'
test_expect_success 'it learns: dev MLM accuracy far above the unigram baseline' '
	af-pretrain --layers 2 --hidden 48 --heads 2 --ffn 96 --vocab "$D/vocab.txt" --max-len 32 \
		--batch-size 16 --threads 1 --dropout 0 --lr 3e-3 --steps 400 --warmup-ratio 0.1 \
		--dev "$D/dev.txt" -o m "$D/train.txt" 2>err &&
	cat err &&
	uni=$(sed -n "s/.*unigram baseline: accuracy \([0-9.]*\).*/\1/p" err) &&
	acc=$(sed -n "s/^dev step 400: .*accuracy \([0-9.]*\).*/\1/p" err) &&
	echo "unigram $uni, model $acc" &&
	awk -v u="$uni" -v a="$acc" "BEGIN { exit !(a > u + 0.1) }" &&
	head -c 12000 m/model.safetensors | grep -q -a "dev_mlm_accuracy"
'
test_expect_success '--log: one JSON line per evaluation' '
	af-pretrain $NEW --steps 9 --eval-every 3 --dev "$D/dev.txt" --log log.jsonl -o m "$D/train.txt" &&
	test "$(wc -l <log.jsonl)" -eq 3 &&
	test_grep "^{\"step\":9,\"tokens_seen\":[0-9]*,.*\"dev_accuracy\":0\.[0-9]*," log.jsonl &&
	test_exit 1 af-pretrain $NEW --steps 2 --log /nonexistent/log -o m "$D/train.txt"
'
test_expect_success '--base: continued pretraining keeps the head; --lr 0 changes nothing' '
	af-pretrain $SHAPE --steps 20 --lr 2e-3 --dev "$D/dev.txt" -o a "$D/train.txt" 2>err1 &&
	af-pretrain --base a --steps 3 --lr 0 --batch-size 8 --max-len 32 --threads 1 \
		--dev "$D/dev.txt" -o b "$D/train.txt" 2>err2 &&
	l1=$(sed -n "s/^dev step 20: \(.*\)/\1/p" err1) &&
	l2=$(sed -n "s/^dev step 3: \(.*\)/\1/p" err2) &&
	echo "$l1 | $l2" && test -n "$l1" && test "$l1" = "$l2" &&
	test_exit 1 af-pretrain --base a --vocab nonexistent --steps 1 -o c "$D/train.txt"
'
test_done
