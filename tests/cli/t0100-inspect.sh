#!/bin/sh
# af-inspect: kinds, metadata, tables, totals, --json, --tensor, every malformed fixture.
. "$(dirname "$0")/lib.sh"
ST=$FIXTURES/safetensors

test_expect_success 'an adapter: kind, metadata pretty-printed, table, totals' '
	af-inspect "$ST/adapter.safetensors" >out 2>err &&
	test_grep "adapter.safetensors: adapter (af-adapter/1)" out &&
	test_grep "^12 tensors, 74 parameters" out &&
	test_grep "^  name  *sst2$" out &&
	test_grep "^                \"reduction_factor\": 2,$" out &&
	test_grep "\"labels\": \[\"negative\", \"positive\"\]" out &&
	test_grep "^  bert.encoder.layer.0.output.adapters.sst2.adapter_down.0.weight  F32  *\[2, 4\]  *8$" out &&
	test_grep "^  heads.sst2.4.bias  *F32  *\[2\]  *2$" out &&
	! test -s err
'

test_expect_success 'a fusion file' '
	af-inspect "$ST/fusion.safetensors" >out &&
	test_grep "fusion.safetensors: fusion (af-fusion/1)" out &&
	test_grep "adapter_fusion_layer.a,b.value.weight" out &&
	test_grep "\"sha256\": \"0000" out
'

test_expect_success 'a BERT base is recognised by its tensor names; dtypes counted' '
	af-inspect "$ST/base.safetensors" >out &&
	test_grep "base.safetensors: base$" out &&
	test_grep "^22 tensors, 268 parameters" out &&
	test_grep "parameters by dtype: F16 40, BF16 32, F32 188, I64 8" out
'

test_expect_success 'other and empty files' '
	af-inspect "$ST/other.safetensors" "$ST/empty.safetensors" >out &&
	test_grep "other.safetensors: other$" out &&
	test_grep "^  scalar  *F32  *\[\]  *1$" out &&
	test_grep "^  empty  *F32  *\[0, 4\]  *0$" out &&
	test_grep "empty.safetensors: other$" out &&
	test_grep "^0 tensors, 0 parameters" out
'

test_expect_success '--json: one document with the same facts' '
	af-inspect --json "$ST/adapter.safetensors" "$ST/base.safetensors" >out &&
	python3 -c "
import json, sys
d = json.load(open(\"out\"))
a, b = d[\"files\"]
assert a[\"kind\"] == \"adapter\" and b[\"kind\"] == \"base\", (a[\"kind\"], b[\"kind\"])
assert a[\"metadata\"][\"config\"][\"reduction_factor\"] == 2
assert a[\"metadata\"][\"name\"] == \"sst2\"
assert a[\"totals\"] == {\"tensors\": 12, \"params\": 74, \"bytes\": 296, \"params_by_dtype\": {\"F32\": 74}}, a[\"totals\"]
t = a[\"tensors\"][0]
assert t[\"name\"].endswith(\"adapter_down.0.weight\") and t[\"shape\"] == [2, 4] and t[\"params\"] == 8
assert t[\"data_offsets\"] == [0, 32]
assert a[\"size_bytes\"] == 8 + a[\"header_bytes\"] + 296
assert b[\"totals\"][\"params_by_dtype\"] == {\"F16\": 40, \"BF16\": 32, \"F32\": 188, \"I64\": 8}
"
'

test_expect_success '--tensor: min, max, mean, std, L2 norm' '
	af-inspect --tensor stats "$ST/other.safetensors" >out &&
	test_grep "^stats: F32 \[2, 2\], 4 values$" out &&
	test_grep "^  min  *1$" out &&
	test_grep "^  max  *4$" out &&
	test_grep "^  mean  *2.5$" out &&
	test_grep "^  std  *1.11803399$" out &&
	test_grep "^  l2  *5.47722558$" out
'

test_expect_success '--tensor converts F16 and BF16' '
	af-inspect -t bert.embeddings.word_embeddings.weight \
		-t bert.embeddings.position_embeddings.weight "$ST/base.safetensors" >out &&
	test_grep "word_embeddings.weight: F16 \[10, 4\], 40 values" out &&
	test_grep "^  min  *-2$" out &&
	test_grep "^  max  *2.875$" out &&
	test_grep "^  mean  *0.4375$" out &&
	test_grep "position_embeddings.weight: BF16 \[8, 4\], 32 values" out &&
	test_grep "^  max  *7.5$" out
'

test_expect_success '--tensor with --json' '
	af-inspect --json --tensor stats "$ST/other.safetensors" >out &&
	python3 -c "
import json
s = json.load(open(\"out\"))[\"files\"][0][\"stats\"][0]
assert s[\"name\"] == \"stats\" and s[\"min\"] == 1 and s[\"max\"] == 4 and s[\"mean\"] == 2.5
assert abs(s[\"std\"] - 1.25 ** 0.5) < 1e-12 and abs(s[\"l2\"] - 30 ** 0.5) < 1e-12
"
'

test_expect_success '--tensor on an empty tensor prints no statistics' '
	af-inspect --tensor empty "$ST/other.safetensors" >out &&
	test_grep "^  min  *-$" out &&
	test_grep "^  l2  *0$" out
'

test_expect_success '--tensor of a missing name fails' '
	test_exit 1 af-inspect --tensor nope "$ST/other.safetensors" >out 2>err &&
	test_grep "^af-inspect: .*other.safetensors: no tensor named .nope.$" err
'

# Every malformed fixture: exit 1, nothing on stdout, the reader's specific message on stderr.
while read -r file message; do
	test_expect_success "rejects $file" "
		test_exit 1 af-inspect \"\$ST/$file\" >out 2>err &&
		! test -s out &&
		test_grep \"^af-inspect: .*$file: $message\" err
	"
done <<'EOF'
bad-short.safetensors file is 3 bytes, too short
bad-header-length.safetensors header length 1000 runs past the end of the file
bad-header-limit.safetensors header length 100000001 exceeds the limit
bad-utf8.safetensors header is not valid UTF-8
bad-json.safetensors header is not valid JSON
bad-dtype.safetensors tensor 'a': unknown dtype 'F128'
bad-meta.safetensors __metadata__: value of 'n' must be a string
bad-hole.safetensors tensor 'a': data_offsets begin at 4, leaving a hole
bad-overlap.safetensors tensor 'b': data_offsets \[4, 8\] overlap tensor 'a'
bad-size.safetensors tensor 'a': data_offsets \[0, 8\] hold 8 bytes, but shape \[3\] of F32 needs 12
bad-trailing.safetensors the data must end exactly at the end of the file
bad-truncated.safetensors tensor 'a': data ends at 8, past the end of the file
bad-duplicate.safetensors tensor 'a' appears twice
EOF

test_expect_success 'a bad file among good ones: the good are reported, exit 1' '
	test_exit 1 af-inspect "$ST/empty.safetensors" "$ST/bad-hole.safetensors" \
		"$ST/other.safetensors" >out 2>err &&
	test_grep "empty.safetensors: other" out &&
	test_grep "other.safetensors: other" out &&
	test_grep "bad-hole.safetensors" err
'

test_expect_success 'a missing file' '
	test_exit 1 af-inspect nonexistent.safetensors 2>err &&
	test_grep "^af-inspect: nonexistent.safetensors: No such file" err
'

test_expect_success 'control characters in names and metadata are shown, not sent' '
	python3 -c "
import json, struct
h = json.dumps({\"__metadata__\": {\"k\": \"a\x1b[2Jb\"}, \"t\x07\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}).encode()
open(\"ctl.safetensors\", \"wb\").write(struct.pack(\"<Q\", len(h)) + h + b\"x\")
" &&
	af-inspect ctl.safetensors >out &&
	test_grep "a\\\\x1b\[2Jb" out &&
	test_grep "^  t\\\\x07 " out &&
	! grep -q "$(printf "\033")" out
'

test_expect_success '--curves: a study TSV drawn as a PNG; malformed tables and misuse refused' '
	printf "task\tmethod\tsize\tseeds\tmean\tsd\nt\ta\t50\t5\t0.5\t0.05\nt\ta\t500\t5\t0.7\t0.02\nt\tb\t50\t5\t0.55\t0.01\n" >c.tsv &&
	af-inspect --curves --png c.png c.tsv &&
	head -c 8 c.png | od -An -c | grep -q "P   N   G" &&
	printf "task\tmethod\tsize\tmean\tsd\nt\ta\t50\tzero\t0\n" >bad.tsv &&
	test_exit 1 af-inspect --curves --png bad.png bad.tsv 2>err &&
	test_grep "bad.tsv:2: column mean: a number expected" err &&
	test ! -e bad.png &&
	test_exit 2 af-inspect --curves c.tsv 2>err &&
	test_grep "give --png OUT" err &&
	test_exit 2 af-inspect --curves --json --png x.png c.tsv 2>err &&
	test_exit 2 af-inspect --curves --png x.png c.tsv c.tsv 2>err &&
	test_grep "one TSV, 2 given" err &&
	test_exit 2 af-inspect --curves --png c.tsv c.tsv 2>err
'

test_expect_success 'usage errors exit 2, --help and --version exit 0' '
	test_exit 2 af-inspect 2>err &&
	test_grep "no file given" err &&
	test_grep "Try .af-inspect --help." err &&
	test_exit 2 af-inspect --frobnicate x 2>err &&
	test_grep "unknown option .--frobnicate." err &&
	test_exit 2 af-inspect x --tensor 2>err &&
	af-inspect --help >out &&
	test_grep "^Usage: af-inspect" out &&
	af-inspect --version >out &&
	test_grep "^af-inspect (af) " out
'

test_expect_success 'a write error on stdout is an error' '
	if test -w /dev/full; then
		test_exit 1 af-inspect "$ST/adapter.safetensors" >/dev/full 2>err &&
		test_grep "write error" err
	fi
'

test_done
