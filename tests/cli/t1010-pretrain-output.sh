#!/bin/sh
# af-pretrain against its users' files (issue 19): -o replaces only a directory af-pretrain wrote,
# checked before training; one run at a time per output; -V and --threads as the other programs.
. "$(dirname "$0")/lib.sh"

D=$TEST_ROOT/data
mkdir -p "$D"
awk 'BEGIN {
	srand(7)
	split("cat dog bird fox horse mouse owl frog", a, " ")
	split("sat ran jumped slept walked swam flew hid", c, " ")
	for (i = 0; i < 300; i++) {
		k = 1 + int(rand() * 8)
		print "the " a[k] " " c[k] " on the mat . the " a[k] " " c[k] " again ."
	}
}' >"$D/train.txt"
af-tokenize --build-vocab 80 -q -o "$D/vocab.txt" "$D/train.txt"
NEW="--layers 1 --hidden 16 --heads 2 --ffn 32 --vocab $D/vocab.txt --max-len 16 --batch-size 4 --threads 1 -q"

test_expect_success '-V prints the version; --threads 0 is refused as elsewhere' '
	af-pretrain -V >out && test_grep "^af-pretrain [0-9]" out &&
	test_exit 2 af-pretrain $NEW --threads 0 -o m "$D/train.txt" 2>err &&
	test_grep "\-\-threads" err && test ! -e m
'
test_expect_success '-o DIR holding a file af did not write: refused before training, nothing deleted' '
	mkdir m && echo precious >m/mine.txt &&
	test_exit 1 af-pretrain $NEW --steps 2 -o m "$D/train.txt" 2>err &&
	test_grep "holds mine.txt, which af-pretrain did not write" err &&
	test "$(cat m/mine.txt)" = precious && test "$(ls m)" = mine.txt &&
	test "$(ls | grep -c -e "\.old\." -e "\.tmp\.")" = 0
'
test_expect_success '-o FILE: refused before training, the file kept, no FILE.old.XXXX' '
	echo precious >f &&
	test_exit 1 af-pretrain $NEW --steps 2 -o f "$D/train.txt" 2>err &&
	test_grep "f: exists and is not a directory" err &&
	test "$(cat f)" = precious && test "$(ls)" = "err
f"
'
test_expect_success 'a Hugging Face model directory (its files, not written by af) is not replaced' '
	af-pretrain $NEW --steps 2 -o m "$D/train.txt" &&
	python3 - m/model.safetensors <<-PY &&
	import json, struct, sys
	p = sys.argv[1]
	b = open(p, "rb").read()
	n = struct.unpack("<Q", b[:8])[0]
	h = json.loads(b[8:8 + n])
	h["__metadata__"] = {"format": "pt"}
	s = json.dumps(h).encode()
	s += b" " * (-len(s) % 8)
	open(p, "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
	PY
	cp m/model.safetensors hf.keep &&
	test_exit 1 af-pretrain $NEW --steps 2 -o m "$D/train.txt" 2>err &&
	test_grep "a model af-pretrain did not write" err && cmp m/model.safetensors hf.keep
'
test_expect_success 'its own directory and an empty one are replaced; nothing left beside them' '
	af-pretrain $NEW --steps 2 -o m "$D/train.txt" &&
	af-pretrain $NEW --steps 3 --seed 5 -o m "$D/train.txt" &&
	mkdir e && af-pretrain $NEW --steps 2 -o e/ "$D/train.txt" && test -f e/model.safetensors &&
	test "$(ls)" = "e
m"
'
test_expect_success 'a second run writing the same -o is refused while the first runs' '
	{ af-pretrain $NEW --steps 1000000 -o m "$D/train.txt" 2>err1 & } &&
	pid=$! &&
	i=0 && while ! test -e m.lock && test $i -lt 100; do sleep 0.1; i=$((i + 1)); done &&
	test_exit 1 af-pretrain $NEW --steps 2 -o m "$D/train.txt" 2>err &&
	test_grep "m: another af program is writing it (process $pid holds m.lock)" err &&
	kill -TERM $pid && { wait $pid; st=$?; } ;
	test "$st" = 143 && test -d m.ckpt && test ! -e m && test ! -e m.lock
'
test_done
