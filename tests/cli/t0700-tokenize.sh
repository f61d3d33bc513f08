#!/bin/sh
# af-tokenize: the reference outputs (scripts/gen-tokenizer-fixtures.sh), input formats, fields
# passed through, pairs and truncation, padding, --model, --build-vocab, and the errors.
. "$(dirname "$0")/lib.sh"
TK=$FIXTURES/tokenizer
V=$TK/vocab.txt

# ---- the reference outputs (tokenizer_ref.py over the hard cases and random strings) ----------
test_expect_success 'lower-cased, default options: as the reference' '
	af-tokenize --vocab "$V" "$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-lower.jsonl"
'
test_expect_success '--tokens: as the reference' '
	af-tokenize --vocab "$V" --tokens "$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-lower-tokens.txt"
'
test_expect_success 'cased, pairs, no length limit: as the reference' '
	af-tokenize --vocab "$V" --no-lowercase --pair pair --max-len 0 "$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-cased-pairs.jsonl"
'
test_expect_success 'pairs truncated to 16 (longest first): as the reference' '
	af-tokenize --vocab "$V" --pair pair --max-len 16 <"$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-pairs16.jsonl"
'
test_expect_success 'lower-cased without accent stripping: as the reference' '
	af-tokenize --vocab "$V" --no-strip-accents "$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-nostrip.jsonl"
'
test_expect_success 'cased with accent stripping, max 24: as the reference' '
	af-tokenize --vocab "$V" --no-lowercase --strip-accents --max-len 24 "$TK/cases.jsonl" >out &&
	cmp out "$TK/expect-cased-strip.jsonl"
'
test_expect_success 'the hard cases do reach the hard paths' '
	af-tokenize --vocab "$V" --tokens "$TK/cases.jsonl" >out &&
	test_grep "^\[CLS\] \[UNK\] \[SEP\]$" out &&
	test_grep "^\[CLS\] \[CLS\] " out &&
	test_grep "^\[CLS\] \[SEP\]$" out &&
	test_grep "我 爱 北 京" out &&
	test_grep " ##" out
'

# ---- formats ----------------------------------------------------------------------------------
printf 'id\tsentence\tlabel\nx1\tHello world\t1\nx2\tnaïve café\t0\n' >"$TEST_ROOT/two.tsv"
test_expect_success 'TSV with a header: columns by name, label as a number, id as a string' '
	af-tokenize --vocab "$V" --tsv --header --text sentence --label label --id id \
		"$TEST_ROOT/two.tsv" >out &&
	test $(wc -l <out) = 2 &&
	test_grep "^{\"input_ids\":\[2,[0-9,]*,3\],\"token_type_ids\":\[0,[0,]*\],\"attention_mask\":\[1,[1,]*\],\"label\":1,\"id\":\"x1\"}$" out &&
	test_grep "\"label\":0,\"id\":\"x2\"}$" out
'
test_expect_success 'TSV: the format is found on its own; columns by number' '
	af-tokenize --vocab "$V" --header --text 2 --label 3 "$TEST_ROOT/two.tsv" >a &&
	af-tokenize --vocab "$V" --tsv --header --text sentence --label label "$TEST_ROOT/two.tsv" >b &&
	cmp a b
'
test_expect_success 'TSV without a header: every line is an example' '
	tail -n +2 "$TEST_ROOT/two.tsv" | af-tokenize --vocab "$V" --tsv --text 2 --id 1 >out &&
	test $(wc -l <out) = 2 && test_grep "\"id\":\"x1\"" out
'
test_expect_success 'a UTF-8 byte-order mark before the header is dropped (MRPC)' '
	printf "\357\273\277Quality\tS\n1\tHello\n" >bom.tsv &&
	af-tokenize --vocab "$V" --header --text S --label Quality bom.tsv >out &&
	test_grep "\"label\":1}" out
'
test_expect_success 'labels: integers and decimals as numbers, names and the rest as strings' '
	printf "t\tl\na\t3.800\nb\tentailment\nc\t-2\nd\t+1\ne\t.5\nf\t01\ng\t1e400\n" >l.tsv &&
	af-tokenize --vocab "$V" --header --text t --label l l.tsv >out &&
	test_grep "\"label\":3.800}" out &&
	test_grep "\"label\":\"entailment\"}" out &&
	test_grep "\"label\":-2}" out &&
	test_grep "\"label\":\"+1\"}" out &&
	test_grep "\"label\":\".5\"}" out &&
	test_grep "\"label\":\"01\"}" out &&
	test_grep "\"label\":\"1e400\"}" out
'
test_expect_success 'CSV: quoted fields, doubled quotes, a field over two lines' '
	printf "text,label\n\"Hello, world\",pos\n\"say \"\"hi\"\"\nthere\",neg\nplain \"quote\",x\n" >q.csv &&
	af-tokenize --vocab "$V" --csv --header --label label --tokens q.csv >out &&
	test $(wc -l <out) = 3 &&
	printf "{\"text\":\"Hello, world\"}\n{\"text\":\"say \\\\\"hi\\\\\"\\\\nthere\"}\n{\"text\":\"plain \\\\\"quote\\\\\"\"}\n" >q.jsonl &&
	af-tokenize --vocab "$V" --tokens q.jsonl >want &&
	cmp out want
'
test_expect_success 'CSV: an unclosed quote is an error naming its line' '
	printf "a,b\n\"open,1\n" >bad.csv &&
	test_exit 1 af-tokenize --vocab "$V" --csv --header --text a bad.csv 2>err &&
	test_grep "bad.csv:2: quoted field not closed" err
'
test_expect_success 'JSONL: label, id and kept fields pass through as written; --task' '
	printf "{\"text\":\"hi\",\"label\":[1, 2],\"id\":17,\"x\":{\"a\":null},\"y\":\"s\"}\n" >in.jsonl &&
	af-tokenize --vocab "$V" --label label --id id --keep x,y,absent --task sst2 in.jsonl >out &&
	test_grep ",\"label\":\[1, 2\],\"task\":\"sst2\",\"id\":17,\"x\":{\"a\":null},\"y\":\"s\"}$" out
'
test_expect_success 'TSV: kept columns become strings under the given name' '
	af-tokenize --vocab "$V" --header --text sentence --keep id,3 "$TEST_ROOT/two.tsv" >out &&
	test_grep "\"id\":\"x1\",\"3\":\"1\"}$" out &&
	test_exit 2 af-tokenize --vocab "$V" --header --id id --keep id "$TEST_ROOT/two.tsv" 2>err &&
	test_grep "keep id: " err
'
test_expect_success 'JSONL: an escaped NUL is dropped, as HF drops NUL; blank lines skipped' '
	printf "{\"text\":\"a\\\\u0000b\"}\n\n  \n{\"text\":\"ab\"}\n" >nul.jsonl &&
	af-tokenize --vocab "$V" nul.jsonl >out &&
	test $(wc -l <out) = 2 &&
	test "$(sed -n 1p out)" = "$(sed -n 2p out)"
'
test_expect_success 'gzip input is read transparently' '
	gzip -c "$TK/cases.jsonl" >cases.jsonl.gz &&
	af-tokenize --vocab "$V" cases.jsonl.gz >out &&
	cmp out "$TK/expect-lower.jsonl"
'

# ---- model inputs -----------------------------------------------------------------------------
test_expect_success 'pairs: [CLS] A [SEP] B [SEP], token types 0 then 1' '
	printf "{\"text\":\"a\",\"pair\":\"b c\"}\n" >p.jsonl &&
	af-tokenize --vocab "$V" --pair pair p.jsonl >out &&
	test_grep "^{\"input_ids\":\[2,[0-9]*,3,[0-9]*,[0-9]*,3\],\"token_type_ids\":\[0,0,0,1,1,1\],\"attention_mask\":\[1,1,1,1,1,1\]}$" out
'
test_expect_success 'truncation: on a tie the second text loses the token' '
	printf "{\"text\":\"a a a\",\"pair\":\"b b b\"}\n" >t.jsonl &&
	af-tokenize --vocab "$V" --pair pair --max-len 8 --tokens t.jsonl >out &&
	test "$(cat out)" = "[CLS] a a a [SEP] b b [SEP]" &&
	af-tokenize --vocab "$V" --pair pair --max-len 7 --tokens t.jsonl >out &&
	test "$(cat out)" = "[CLS] a a [SEP] b b [SEP]" &&
	af-tokenize --vocab "$V" --max-len 3 --tokens t.jsonl >out &&
	test "$(cat out)" = "[CLS] a [SEP]"
'
test_expect_success '--pad fills up to --max-len with [PAD], attention 0' '
	printf "{\"text\":\"a\"}\n" >one.jsonl &&
	af-tokenize --vocab "$V" --max-len 6 --pad one.jsonl >out &&
	test_grep "^{\"input_ids\":\[2,[0-9]*,3,0,0,0\],\"token_type_ids\":\[0,0,0,0,0,0\],\"attention_mask\":\[1,1,1,0,0,0\]}$" out
'
test_expect_success 'special tokens come from the vocabulary, not fixed ids' '
	printf "[SEP]\nhello\n[UNK]\n[CLS]\n" >v.txt &&
	printf "{\"text\":\"hello bye\"}\n" >h.jsonl &&
	af-tokenize --vocab v.txt h.jsonl >out &&
	test "$(cat out)" = "{\"input_ids\":[3,1,2,0],\"token_type_ids\":[0,0,0,0],\"attention_mask\":[1,1,1,1]}"
'
test_expect_success '--model DIR: vocab.txt and do_lower_case from tokenizer_config.json' '
	mkdir m && cp "$V" m/vocab.txt &&
	printf "{\"do_lower_case\": false, \"cls_token\": {\"content\": \"[CLS]\"}}\n" >m/tokenizer_config.json &&
	af-tokenize --model m "$TK/cases.jsonl" >a &&
	af-tokenize --vocab "$V" --no-lowercase "$TK/cases.jsonl" >b &&
	cmp a b &&
	af-tokenize --model m --lowercase "$TK/cases.jsonl" >c &&
	cmp c "$TK/expect-lower.jsonl"
'
test_expect_success '-o writes the file; a summary goes to stderr' '
	af-tokenize --vocab "$V" -o out.jsonl "$TK/cases.jsonl" 2>err &&
	cmp out.jsonl "$TK/expect-lower.jsonl" &&
	test_grep "examples, [0-9]* tokens" err &&
	! ls out.jsonl.tmp.* 2>/dev/null
'
test_expect_success 'the output is read by af-pretrain and af-train-adapter' '
	awk "NF { printf \"%s\t%d\n\", \$0, NR % 2 }" "$TK/corpus.txt" >c.tsv &&
	af-tokenize --vocab "$V" --tsv --label 2 --id 1 --max-len 32 c.tsv >tok.jsonl &&
	af-pretrain --layers 1 --hidden 8 --heads 1 --ffn 8 --vocab "$V" --steps 1 \
		--batch-size 4 --max-len 32 --quiet -o base tok.jsonl &&
	af-train-adapter --base base --name t -o t.safetensors --bottleneck 2 --max-steps 2 \
		--quiet tok.jsonl &&
	test -s t.safetensors
'

# ---- --build-vocab ----------------------------------------------------------------------------
test_expect_success '--build-vocab: the committed test vocabulary, again' '
	af-tokenize --build-vocab 1500 --no-lowercase -q "$TK/corpus.txt" >out &&
	cmp out "$V"
'
test_expect_success '--build-vocab: special tokens, then characters, then ## characters' '
	af-tokenize --build-vocab 300 -q <"$TK/corpus.txt" >out &&
	test $(wc -l <out) = 300 &&
	test "$(head -5 out | tr "\n" " ")" = "[PAD] [UNK] [CLS] [SEP] [MASK] " &&
	test "$(sed -n 6p out)" = "e" &&
	test_grep "^##e$" out &&
	! test_grep "^[A-Z]$" out 2>/dev/null &&
	test "$(sort out | uniq -d)" = ""
'
test_expect_success '--build-vocab: words become pieces of the new vocabulary' '
	af-tokenize --build-vocab 1400 -o v.txt "$TK/corpus.txt" 2>err &&
	test_grep "vocabulary of [0-9]* entries" err &&
	test_grep "^the$" v.txt &&
	printf "{\"text\":\"The committee walked along the river.\"}\n" >s.jsonl &&
	af-tokenize --vocab v.txt --tokens s.jsonl >out &&
	! test_grep "UNK" out 2>/dev/null
'
test_expect_success '--build-vocab: from a TSV column; too small a size leaves characters out' '
	af-tokenize --build-vocab 9 -q --header --text sentence "$TEST_ROOT/two.tsv" >out &&
	test $(wc -l <out) = 9 &&
	test "$(sed -n 6,9p out | tr "\n" " ")" = "e l ##e ##l "
'

# ---- errors -----------------------------------------------------------------------------------
test_expect_success 'usage errors exit 2' '
	test_exit 2 af-tokenize "$TK/cases.jsonl" 2>err && test_grep "vocab" err &&
	test_exit 2 af-tokenize --vocab "$V" --max-len 2 2>err && test_grep "max-len" err &&
	test_exit 2 af-tokenize --vocab "$V" --max-len x 2>err &&
	test_exit 2 af-tokenize --vocab "$V" --pad --max-len 0 2>err &&
	test_exit 2 af-tokenize --vocab "$V" --label l --keep label 2>err && test_grep "label" err &&
	test_exit 2 af-tokenize --vocab "$V" --keep input_ids 2>err && test_grep "input_ids" err &&
	test_exit 2 af-tokenize --vocab "$V" a b 2>err &&
	test_exit 2 af-tokenize --bogus 2>err &&
	test_exit 2 af-tokenize --build-vocab 4 2>err &&
	test_exit 2 af-tokenize --build-vocab 10 --label l 2>err
'
test_expect_success '--help and --version' '
	af-tokenize --help >out && test_grep "^usage: af-tokenize" out &&
	af-tokenize --version >out && test_grep "Unicode [0-9]" out &&
	af-tokenize -V >out && test_grep "^af-tokenize [0-9]" out
'
test_expect_success 'runtime errors exit 1 and name the file and line' '
	printf "{\"text\":\"ok\"}\n{\"text\":\"ok\"\n" >e1.jsonl &&
	test_exit 1 af-tokenize --vocab "$V" e1.jsonl 2>err && test_grep "e1.jsonl:2: " err &&
	printf "{\"text\":\"ok\"}\n\n{\"other\":1}\n" >e2.jsonl &&
	test_exit 1 af-tokenize --vocab "$V" e2.jsonl 2>err && test_grep "e2.jsonl:3: no field .text." err &&
	printf "{\"text\":5}\n" >e3.jsonl &&
	test_exit 1 af-tokenize --vocab "$V" e3.jsonl 2>err && test_grep "e3.jsonl:1: field .text. is not a string" err &&
	printf "{\"text\":\"a\\377b\"}\n" >e4.jsonl &&
	test_exit 1 af-tokenize --vocab "$V" e4.jsonl 2>err && test_grep "e4.jsonl:1: invalid UTF-8" err &&
	printf "t\n\nok\nbad\\377\n" >e5.tsv &&
	test_exit 1 af-tokenize --vocab "$V" --tsv --header e5.tsv 2>err && test_grep "e5.tsv:4: field .1.: invalid UTF-8 at byte 4" err &&
	test_exit 1 af-tokenize --vocab "$V" --pair 4 "$TEST_ROOT/two.tsv" 2>err && test_grep "two.tsv:1: no column .4. (the line has 3)" err &&
	test_exit 1 af-tokenize --vocab "$V" --header --text nope "$TEST_ROOT/two.tsv" 2>err && test_grep "no column .nope. in the header (id, sentence, label)" err &&
	printf "{\"text\":\"x\"}\n" >h.jsonl &&
	test_exit 1 af-tokenize --vocab "$V" --label label h.jsonl 2>err && test_grep "h.jsonl:1: no field .label." err
'
test_expect_success 'a vocabulary without [CLS], or none at all, is an error' '
	printf "[SEP]\n[UNK]\n" >nocls.txt &&
	test_exit 1 af-tokenize --vocab nocls.txt "$TK/cases.jsonl" 2>err && test_grep "no \[CLS\] token" err &&
	test_exit 1 af-tokenize --vocab missing.txt "$TK/cases.jsonl" 2>err && test_grep "missing.txt" err &&
	printf "[CLS]\n[SEP]\n[UNK]\n\377\n" >badv.txt &&
	test_exit 1 af-tokenize --vocab badv.txt "$TK/cases.jsonl" 2>err && test_grep "badv.txt:4: invalid UTF-8" err
'
test_expect_success '--pad with a vocabulary that has no [PAD]' '
	printf "[CLS]\n[SEP]\n[UNK]\n" >nopad.txt &&
	printf "{\"text\":\"x\"}\n" >x.jsonl &&
	test_exit 1 af-tokenize --vocab nopad.txt --pad x.jsonl 2>err && test_grep "PAD" err
'

test_done
