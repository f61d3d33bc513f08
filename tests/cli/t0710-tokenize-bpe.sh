#!/bin/sh
# af-tokenize, byte-level BPE: HF RobertaTokenizer's ids for tricky texts (scripts/gen-bpe-fixtures.py,
# reference scripts/bpe_ref.py), --model DIR picking BPE, specials, pairs, errors.
. "$(dirname "$0")/lib.sh"
D=$FIXTURES/tokenizer/bpe
G="--vocab $D/gpt2/vocab.json --merges $D/gpt2/merges.txt"

test_expect_success 'GPT-2 files: the ids of RobertaTokenizer (specials added after the vocabulary)' '
	af-tokenize $G --max-len 0 "$D/in.jsonl" >out &&
	cmp out "$D/gpt2.expected"
'

test_expect_success '--model DIR with vocab.json and merges.txt: BPE, its tokenizer_config (prefix space, CRLF merges)' '
	af-tokenize --model "$D/roberta" --max-len 0 "$D/in.jsonl" >out &&
	cmp out "$D/roberta.expected" &&
	! cmp -s out "$D/gpt2.expected"
'

test_expect_success 'pairs: <s> A </s></s> B </s>, longest-first truncation, padding with <pad>' '
	grep "\"pair\"" "$D/in.jsonl" >pairs.jsonl &&
	af-tokenize --model "$D/roberta" --pair pair --max-len 16 --pad pairs.jsonl >out &&
	cmp out "$D/pairs.expected"
'

test_expect_success '--tokens shows the byte-level symbols; --add-prefix-space' '
	echo "{\"text\":\"Hello world <mask>\"}" >in.jsonl &&
	af-tokenize $G --tokens in.jsonl >out &&
	echo "<s> H ell o Ġworld <mask> </s>" >want && cmp out want &&
	af-tokenize $G --tokens --add-prefix-space in.jsonl >out &&
	echo "<s> ĠHe ll o Ġworld <mask> </s>" >want && cmp out want
'

test_expect_success 'a special token without an id is an error naming it' '
	echo "{\"text\":\"an <unk> here\"}" >in.jsonl &&
	test_exit 1 af-tokenize $G in.jsonl >out 2>err &&
	test_grep "<unk> in the text has no id in vocab.json" err
'

test_expect_success 'usage: vocab.json needs merges; WordPiece options refused' '
	test_exit 2 af-tokenize --vocab "$D/gpt2/vocab.json" "$D/in.jsonl" 2>err &&
	test_grep "needs --merges" err &&
	test_exit 2 af-tokenize $G --lowercase "$D/in.jsonl" 2>err &&
	test_grep "WordPiece" err &&
	test_exit 2 af-tokenize --model "$D/roberta" --build-vocab 100 "$D/in.jsonl" 2>err
'

test_expect_success 'a broken vocab.json or merges.txt is named' '
	echo "[1,2]" >v.json &&
	test_exit 1 af-tokenize --vocab v.json --merges "$D/gpt2/merges.txt" "$D/in.jsonl" 2>err &&
	test_grep "v.json: a JSON object of token -> id expected" err &&
	printf "#version\n\377\376 x\n" >m.txt &&
	test_exit 1 af-tokenize --vocab "$D/gpt2/vocab.json" --merges m.txt "$D/in.jsonl" 2>err &&
	test_grep "m.txt: line 2: invalid UTF-8" err
'

test_done
