#!/bin/sh
# af-convert: AdapterHub directories saved by the real AdapterHub 3.2.1 (tests/fixtures/hub, from
# scripts/gen-hub-fixtures.py) import, and af-infer on them gives AdapterHub's probabilities;
# af's files go out with --to-hub and come back bit for bit; hostile, truncated, legacy and
# unsupported inputs are refused by name. (That AdapterHub loads the exports is checked by
# scripts/gen-hub-fixtures.py --check-export, which needs PyTorch.)
. "$(dirname "$0")/lib.sh"
BASE=$FIXTURES/encoder/f32
HUB=$FIXTURES/hub
INF=$FIXTURES/infer

# import CASE: HUB/CASE -> CASE.st, af-infer on in.jsonl against CASE.expected
import_check() {
	af-convert --base "$BASE" -o "$1.st" "$HUB/$1" &&
	af-infer --base "$BASE" --adapter "$1.st" "$HUB/in.jsonl" >out &&
	numbers out >got && numbers_close "$HUB/$1.expected" got
}

test_expect_success 'help and version' '
	af-convert --help >out && test_grep "^Usage: af-convert --base DIR -o OUT.safetensors HUBDIR" out &&
	af-convert --version >out && test_grep "^af-convert [0-9]" out
'

for c in pfeiffer houlsby leaveout perlayer oldgelu multilabel; do
	test_expect_success "AdapterHub's $c adapter with its head: af-infer gives AdapterHub's outputs" "
		import_check $c
	"
done

test_expect_success 'the imported file is an af adapter on this base, with the head and the hub record' '
	af-convert --base "$BASE" -o pf.st "$HUB/pfeiffer" &&
	af-inspect --json pf.st >out &&
	test_grep "\"format\": \"af-adapter/1\"" out && test_grep "\"name\": \"pf\"" out &&
	test_grep "heads.pf.4.weight" out && test_grep "adapter_config" out
'

test_expect_success '--name renames the adapter and its head; --head picks the head' '
	af-convert --base "$BASE" --name sst -o s.st "$HUB/pfeiffer" &&
	af-inspect --json s.st >out && test_grep "adapters.sst.adapter_up.weight" out &&
	test_grep "heads.sst.4.weight" out &&
	af-infer --base "$BASE" --adapter s.st "$HUB/in.jsonl" >o && numbers o >got &&
	numbers_close "$HUB/pfeiffer.expected" got &&
	test_exit 1 af-convert --base "$BASE" --head nope -o x.st "$HUB/pfeiffer" 2>err &&
	test_grep "no head named .nope." err && test ! -e x.st
'

test_expect_success "AdapterHub's multi-label head: the kind recorded, the predicted set is sigmoid > 0.5" '
	af-convert --base "$BASE" -o ml.st "$HUB/multilabel" &&
	af-inspect --json ml.st >out && tr -d " \n" <out >flat &&
	test_grep "\"mlh\":{\"kind\":\"multilabel\",\"labels\":\[\"toxic\",\"rude\",\"spam\"\]}" flat &&
	af-infer --base "$BASE" --adapter ml.st "$HUB/in.jsonl" >o &&
	numbers o >got && numbers_close "$HUB/multilabel.expected" got &&
	# AdapterHub gives toxic 0.515, 0.532, 0.415, 0.429, 0.153, 0.602 and the others below 0.31
	grep -o "\"labels\":\[[^]]*\]" o | tr "\n" " " >sets &&
	printf "%s" "\"labels\":[\"toxic\"] \"labels\":[\"toxic\"] \"labels\":[] \"labels\":[] \"labels\":[] \"labels\":[\"toxic\"] " >want &&
	cmp sets want
'

test_expect_success 'a version-less config says gelu and means gelu_new; with a version, gelu' '
	af-convert --base "$BASE" -o og.st "$HUB/oldgelu" &&
	af-inspect --json og.st >out && test_grep "\"non_linearity\": \"gelu_new\"" out &&
	mkdir og && cp "$HUB/oldgelu"/* og/ &&
	sed "s/\"name\": \"og\"/\"name\": \"og\", \"version\": \"3.2.1\"/" "$HUB/oldgelu/adapter_config.json" >og/adapter_config.json &&
	af-convert --base "$BASE" -o og2.st og &&
	af-inspect --json og2.st >out && test_grep "\"non_linearity\": \"gelu\"" out
'

test_expect_success "AdapterHub's attention fusion over two adapters with its head: AdapterHub's outputs" '
	af-convert --base "$BASE" -o fa.st "$HUB/fa" && af-convert --base "$BASE" -o fb.st "$HUB/fb" &&
	af-convert --base "$BASE" --adapter fa.st --adapter fb.st -o fab.st "$HUB/fusion" &&
	af-inspect --json fab.st >j && test_grep "heads.fa_fb.4.weight" j &&
	af-infer --base "$BASE" --adapter fa.st --adapter fb.st --fusion fab.st "$HUB/in.jsonl" >out &&
	numbers out >got && numbers_close "$HUB/fusion.expected" got &&
	af-infer --base "$BASE" --adapter fa.st --adapter fb.st --fusion fab.st --fusion-weights \
		"$HUB/in.jsonl" >fw && af-inspect --fusion-weights fw >map && test_grep "fa" map
'

test_expect_success "AdapterHub's fusion over Houlsby adapters (both sites): AdapterHub's outputs" '
	af-convert --base "$BASE" -o ha.st "$HUB/ha" && af-convert --base "$BASE" -o hb.st "$HUB/hb" &&
	af-convert --base "$BASE" --adapter ha.st --adapter hb.st -o h.st "$HUB/hfusion" &&
	af-inspect --json h.st >j && test_grep "layer.1.attention.output.adapter_fusion_layer.ha,hb.value.weight" j &&
	af-infer --base "$BASE" --adapter ha.st --adapter hb.st --fusion h.st "$HUB/in.jsonl" >out &&
	numbers out >got && numbers_close "$HUB/hfusion.expected" got
'

test_expect_success "AdapterHub's fusion over adapters that leave out layer 0: AdapterHub's outputs" '
	af-convert --base "$BASE" -o da.st "$HUB/da" && af-convert --base "$BASE" -o db.st "$HUB/db" &&
	af-convert --base "$BASE" --adapter da.st --adapter db.st -o d.st "$HUB/dfusion" &&
	af-inspect --json d.st >j && ! grep -q "layer\.0\." j &&
	test_grep "layer.1.output.adapter_fusion_layer.da,db.value.weight" j &&
	test_grep "\"leave_out\": \[0\]" j &&
	af-infer --base "$BASE" --adapter da.st --adapter db.st --fusion d.st "$HUB/in.jsonl" >out &&
	numbers out >got && numbers_close "$HUB/dfusion.expected" got
'

test_expect_success "a fusion of adapters that leave out different layers is refused, saying why" '
	af-convert --base "$BASE" -o ma.st "$HUB/ma" && af-convert --base "$BASE" -o mb.st "$HUB/mb" &&
	test_exit 1 af-convert --base "$BASE" --adapter ma.st --adapter mb.st -o m.st \
		"$HUB/mfusion" 2>err &&
	test_grep "adapters .ma. and .mb. leave out different layers (0; none): AdapterHub fuses" err &&
	! test -e m.st
'

test_expect_success 'a fusion needs its adapters, in its order' '
	af-convert --base "$BASE" -o fa.st "$HUB/fa" && af-convert --base "$BASE" -o fb.st "$HUB/fb" &&
	test_exit 1 af-convert --base "$BASE" --adapter fb.st --adapter fa.st -o x.st "$HUB/fusion" 2>err &&
	test_grep "fuses .fa,fb., but the adapter files given hold .fb,fa." err &&
	test_exit 2 af-convert --base "$BASE" -o x.st "$HUB/fusion" 2>err &&
	test_grep "a fusion directory: give its adapters" err && test ! -e x.st
'

# af -> hub -> af: every tensor bit for bit, and the same predictions byte for byte
roundtrip() {
	af-convert --to-hub hub "$INF/$1.safetensors" &&
	test -f hub/adapter_config.json && test -f hub/pytorch_adapter.bin &&
	test -f hub/head_config.json && test -f hub/pytorch_model_head.bin &&
	af-convert --base "$BASE" -o back.st hub &&
	af-inspect --diff "$INF/$1.safetensors" back.st >diff &&
	test_grep "tensors: [0-9]* equal, 0 different, 0 of another shape, 0 only in A, 0 only in B" diff &&
	af-infer --base "$BASE" --adapter "$INF/$1.safetensors" "$HUB/in.jsonl" >want &&
	af-infer --base "$BASE" --adapter back.st "$HUB/in.jsonl" >got && cmp want got
}
for c in a b c; do
	test_expect_success "af adapter $c -> AdapterHub -> af: the same tensors, bit for bit" "roundtrip $c"
done

test_expect_success 'a multi-label head -> AdapterHub (multilabel_classification) -> af: bit for bit' '
	af-convert --base "$BASE" -o ml.st "$HUB/multilabel" && af-convert --to-hub hub ml.st &&
	test_grep "\"head_type\": \"multilabel_classification\"" hub/head_config.json &&
	test_grep "\"toxic\": 0" hub/head_config.json &&
	af-convert --base "$BASE" -o back.st hub &&
	af-inspect --diff ml.st back.st >diff &&
	test_grep "tensors: [0-9]* equal, 0 different, 0 of another shape, 0 only in A, 0 only in B" diff &&
	af-inspect --json back.st >j && test_grep "\"kind\": \"multilabel\"" j &&
	af-infer --base "$BASE" --adapter ml.st "$HUB/in.jsonl" >want &&
	af-infer --base "$BASE" --adapter back.st "$HUB/in.jsonl" >got && cmp want got
'

test_expect_success 'AdapterHub -> af -> AdapterHub writes the same layout back (leave_out, factors)' '
	af-convert --base "$BASE" -o lo.st "$HUB/leaveout" && af-convert --to-hub lo lo.st &&
	tr -d " \n" <lo/adapter_config.json >flat && test_grep "\"leave_out\":\[0\]" flat &&
	af-convert --base "$BASE" -o pl.st "$HUB/perlayer" && af-convert --to-hub pl pl.st &&
	tr -d " \n" <pl/adapter_config.json >flat && test_grep "\"reduction_factor\":{\"0\":16,\"1\":4,\"default\":8}" flat &&
	af-convert --base "$BASE" -o pl2.st pl && af-inspect --diff pl.st pl2.st >diff &&
	test_grep " 0 different, 0 of another shape, 0 only in A, 0 only in B" diff &&
	test_grep "\"model_class\": \"BertAdapterModel\"" pl/head_config.json
'

test_expect_success 'an af fusion -> AdapterHub -> af: the fusion tensors bit for bit (temperature 1)' '
	gen_separable 3 16 >train.jsonl &&
	af-fuse --base "$BASE" --threads 1 --adapter "$INF/a.safetensors" --adapter "$INF/b.safetensors" \
		--name t --lr 0 --epochs 1 -o f.st train.jsonl 2>/dev/null &&
	af-convert --to-hub out f.st --adapter "$INF/a.safetensors" --adapter "$INF/b.safetensors" &&
	test -f out/fusion/adapter_fusion_config.json && test -f out/fusion/pytorch_model_adapter_fusion.bin &&
	test -f out/a/pytorch_adapter.bin && test -f out/b/adapter_config.json &&
	af-convert --base "$BASE" -o a.st out/a && af-convert --base "$BASE" -o b.st out/b &&
	af-convert --base "$BASE" --adapter a.st --adapter b.st -o back.st out/fusion &&
	af-inspect --diff f.st back.st >diff &&
	test_grep " 0 different, 0 of another shape, 0 only in A, 0 only in B" diff &&
	af-infer --base "$BASE" --adapter a.st --adapter b.st --fusion back.st "$HUB/in.jsonl" >got &&
	af-infer --base "$BASE" --adapter "$INF/a.safetensors" --adapter "$INF/b.safetensors" \
		--fusion f.st "$HUB/in.jsonl" >want && cmp want got
'

test_expect_success 'a fusion at temperature 1.5 exports with T folded into the query' '
	af-convert --to-hub out "$INF/ab.safetensors" --adapter "$INF/a.safetensors" --adapter "$INF/b.safetensors" &&
	test_grep "\"temperature\": false" out/fusion/adapter_fusion_config.json &&
	af-convert --base "$BASE" -o a.st out/a && af-convert --base "$BASE" -o b.st out/b &&
	af-convert --base "$BASE" --adapter a.st --adapter b.st -o back.st out/fusion &&
	af-infer --base "$BASE" --adapter a.st --adapter b.st --fusion back.st "$HUB/in.jsonl" >o1 &&
	af-infer --base "$BASE" --adapter "$INF/a.safetensors" --adapter "$INF/b.safetensors" \
		--fusion "$INF/ab.safetensors" "$HUB/in.jsonl" >o2 &&
	numbers o1 >got && numbers o2 >want && numbers_close want got &&
	test_exit 1 af-convert --to-hub out2 "$INF/ab.safetensors" --adapter "$INF/b.safetensors" \
		--adapter "$INF/a.safetensors" 2>err && test_grep "adapter 1 of the fusion is not" err
'

test_expect_success '--format safetensors writes the adapters library names, and they import' '
	af-convert --to-hub st --format safetensors "$INF/a.safetensors" &&
	test -f st/adapter.safetensors && test -f st/model_head.safetensors && test ! -e st/pytorch_adapter.bin &&
	af-convert --base "$BASE" -o back.st st && af-inspect --diff "$INF/a.safetensors" back.st >diff &&
	test_grep " 0 different," diff
'

# The `adapters` library's layout (1.2.0, from its source: scripts/gen-adapters-fixtures.py)
AL=$HUB/adapters
# same_json FIXTURE OURS: json.dump writes no final newline, af does
same_json() { { cat "$1" && echo; } | cmp - "$2"; }

for c in pfeiffer houlsby; do
	test_expect_success "the adapters library's $c directory imports; af-infer gives the outputs; export writes it back byte for byte" "
		af-convert --base \"\$BASE\" -o $c.st \"\$AL/$c\" &&
		af-infer --base \"\$BASE\" --adapter $c.st \"\$HUB/in.jsonl\" >out &&
		numbers out >got && numbers_close \"\$AL/$c.expected\" got &&
		af-convert --to-hub ex --format safetensors $c.st &&
		same_json \"\$AL/$c/adapter_config.json\" ex/adapter_config.json &&
		same_json \"\$AL/$c/head_config.json\" ex/head_config.json &&
		cmp \"\$AL/$c/adapter.safetensors\" ex/adapter.safetensors &&
		cmp \"\$AL/$c/model_head.safetensors\" ex/model_head.safetensors
	"
done

test_expect_success "the adapters library's fusion (adapter_names, dropout_prob): its outputs, and back" '
	af-convert --base "$BASE" -o fa.st "$AL/fa" && af-convert --base "$BASE" -o fb.st "$AL/fb" &&
	af-convert --base "$BASE" --adapter fa.st --adapter fb.st -o f.st "$AL/fusion" &&
	af-infer --base "$BASE" --adapter fa.st --adapter fb.st --fusion f.st "$HUB/in.jsonl" >out &&
	numbers out >got && numbers_close "$AL/fusion.expected" got &&
	af-convert --to-hub ex --format safetensors f.st --adapter fa.st --adapter fb.st &&
	same_json "$AL/fusion/adapter_fusion_config.json" ex/fusion/adapter_fusion_config.json &&
	cmp "$AL/fusion/model_adapter_fusion.safetensors" ex/fusion/model_adapter_fusion.safetensors &&
	same_json "$AL/fa/adapter_config.json" ex/fa/adapter_config.json &&
	cmp "$AL/fb/adapter.safetensors" ex/fb/adapter.safetensors &&
	mkdir r && cp "$AL/fusion"/* r/ &&
	sed "s/\"fb\"$/\"fc\"/" "$AL/fusion/adapter_fusion_config.json" >r/adapter_fusion_config.json &&
	test_exit 1 af-convert --base "$BASE" --adapter fa.st --adapter fb.st -o x.st r 2>err &&
	test_grep "adapter_names = \[\"fa\",\"fc\"\], but the fusion is .fa,fb." err && test ! -e x.st
'

test_expect_success "a bare model's state dict (names without bert.) reads as the prefixed one" '
	af-convert --base "$BASE" -o bare.st "$AL/bare" && af-convert --base "$BASE" -o p.st "$AL/pfeiffer" &&
	af-inspect --diff p.st bare.st >diff &&
	test_grep "tensors: 8 equal, 0 different, 0 of another shape, 4 only in A, 0 only in B" diff
'

test_expect_success "the adapters library's fields: training-only ones pass, the others are refused by name" '
	mkdir a && cp "$AL/pfeiffer"/* a/ &&
	sed "s/\"init_weights_seed\": null/\"init_weights_seed\": 42/; s/\"dropout\": 0.0/\"dropout\": 0.1/" \
		"$AL/pfeiffer/adapter_config.json" >a/adapter_config.json &&
	sed "s/\"dropout_prob\": null/\"dropout_prob\": 0.2/" "$AL/pfeiffer/head_config.json" >a/head_config.json &&
	af-convert --base "$BASE" -o a.st a && af-convert --base "$BASE" -o p.st "$AL/pfeiffer" &&
	af-inspect --diff p.st a.st >diff && test_grep " 0 different, 0 of another shape, 0 only in A, 0 only in B" diff &&
	cp "$AL/pfeiffer/head_config.json" a/ &&
	sed "s/\"residual_before_ln\": true/\"residual_before_ln\": \"post_add\"/" "$AL/pfeiffer/adapter_config.json" >a/adapter_config.json &&
	test_exit 1 af-convert --base "$BASE" -o x.st a 2>err &&
	test_grep "config.residual_before_ln = \"post_add\": af adds the residual taken before the LayerNorm" err &&
	sed "s/\"init_weights_seed\": null/\"init_weights_seed\": \"x\"/" "$AL/pfeiffer/adapter_config.json" >a/adapter_config.json &&
	test_exit 1 af-convert --base "$BASE" -o x.st a 2>err && test_grep "config.init_weights_seed = \"x\": null or an integer expected" err &&
	cp "$AL/pfeiffer/adapter_config.json" a/ &&
	sed "s/\"dropout_prob\": null/\"dropout_prob\": 2/" "$AL/pfeiffer/head_config.json" >a/head_config.json &&
	test_exit 1 af-convert --base "$BASE" -o x.st a 2>err && test_grep "config.dropout_prob = 2: null or a dropout probability expected" err &&
	test ! -e x.st
'

test_expect_success 'a checkpoint re-zipped with deflate reads the same' '
	af-convert --base "$BASE" -o d.st "$HUB/deflated" && af-convert --base "$BASE" -o p.st "$HUB/pfeiffer" &&
	af-inspect --diff p.st d.st >diff && test_grep " 0 different, 0 of another shape, 0 only in A, 0 only in B" diff
'

test_expect_success 'a pickle naming os.system is refused by name, and nothing runs' '
	rm -f /tmp/af-convert-pwned.txt &&
	test_exit 1 af-convert --base "$BASE" -o x.st "$HUB/evil" 2>err &&
	test_grep "evil/pytorch_adapter.bin: pytorch_adapter/data.pkl: byte 2: global .os.system. refused" err &&
	test ! -e /tmp/af-convert-pwned.txt && test ! -e x.st
'

test_expect_success 'the legacy format is refused, saying how to re-save' '
	test_exit 1 af-convert --base "$BASE" -o x.st "$HUB/legacy" 2>err &&
	test_grep "legacy format (before PyTorch 1.6)" err && test_grep "torch.save(torch.load(" err
'

test_expect_success 'truncated and corrupt checkpoints: clear errors naming the file' '
	mkdir t && cp "$HUB/pfeiffer"/* t/ &&
	head -c 3000 "$HUB/pfeiffer/pytorch_adapter.bin" >t/pytorch_adapter.bin &&
	test_exit 1 af-convert --base "$BASE" -o x.st t 2>err &&
	test_grep "t/pytorch_adapter.bin: no zip end-of-central-directory record (truncated, or not a zip)" err &&
	cp "$HUB/pfeiffer/pytorch_adapter.bin" t/ &&
	printf "\377\377\377\377" | dd of=t/pytorch_adapter.bin bs=1 seek=2000 conv=notrunc 2>/dev/null &&
	test_exit 1 af-convert --base "$BASE" -o x.st t 2>err && test_grep "CRC-32 mismatch" err &&
	test ! -e x.st
'

# refused CASE SED-EXPRESSION MESSAGE: the Pfeiffer directory with its config edited
refused() {
	mkdir -p r && cp "$HUB/pfeiffer"/* r/ &&
	sed "$2" "$HUB/pfeiffer/$1" >r/$1 &&
	test_exit 1 af-convert --base "$BASE" -o x.st r 2>err && test_grep "$3" err && test ! -e x.st
}
test_expect_success 'config fields af does not compute are refused, naming field and value' '
	refused adapter_config.json "s/\"ln_before\": false/\"ln_before\": true/" "config.ln_before = true: af.s adapters have no LayerNorm" &&
	refused adapter_config.json "s/\"inv_adapter\": null/\"inv_adapter\": \"nice\"/" "config.inv_adapter = \"nice\": invertible adapters" &&
	refused adapter_config.json "s/\"phm_layer\": false/\"phm_layer\": true/" "config.phm_layer = true" &&
	refused adapter_config.json "s/\"is_parallel\": false/\"is_parallel\": true/" "config.is_parallel = true" &&
	refused adapter_config.json "s/\"non_linearity\": \"relu\"/\"non_linearity\": \"leakyrelu\"/" "config.non_linearity = \"leakyrelu\"" &&
	refused adapter_config.json "s/\"use_gating\": false/\"use_gating\": false, \"bogus\": 0.1/" "config.bogus = 0.1: a field af does not know" &&
	refused adapter_config.json "s/\"original_ln_before\": true/\"original_ln_before\": false/" "af computes Pfeiffer (false, true, true) and Houlsby" &&
	refused head_config.json "s/\"classification\"/\"tagging\"/" "config.head_type = \"tagging\": af.s heads are classification heads" &&
	refused head_config.json "s/\"use_pooler\": false/\"use_pooler\": true/" "config.use_pooler = true" &&
	refused adapter_config.json "s/\"scaling\": 1.0/\"scaling\": \"channel\"/" "config.scaling = \"channel\": a fixed number expected"
'

test_expect_success 'shapes are checked against the base' '
	test_exit 1 af-convert --base "$FIXTURES/train/base" -o x.st "$HUB/pfeiffer" 2>err &&
	test_grep "hidden_size 32, but the base" err &&
	mkdir r && cp "$HUB/pfeiffer"/* r/ &&
	sed "s/\"reduction_factor\": 8/\"reduction_factor\": 16/" "$HUB/pfeiffer/adapter_config.json" >r/adapter_config.json &&
	test_exit 1 af-convert --base "$BASE" -o x.st r 2>err &&
	test_grep "r/pytorch_adapter.bin: bert.encoder.layer.0.output.adapters.pf.adapter_down.0.weight: shape \[2, 32\] expected, \[4, 32\] found" err
'

test_expect_success 'af-inspect HUBDIR shows what the directory holds' '
	af-inspect "$HUB/fusion" >out &&
	test_grep "an AdapterHub directory" out && test_grep "^fusion fa,fb (adapter_fusion_config.json, AdapterHub 3.2.1" out &&
	test_grep "adapter_fusion_layer.fa,fb.value.weight .*F32 \[32, 32\]" out && test_grep "^head fa,fb" out
'

test_expect_success 'af-inspect --json HUBDIR: the modules, their configs and tensors, as JSON' '
	af-inspect --json "$HUB/fusion" "$HUB/adapters/houlsby" "$INF/a.safetensors" >out &&
	python3 -c "
import json, sys
d = json.load(open(\"out\"))
f, h, a = d[\"files\"]
assert f[\"kind\"] == \"adapterhub\" and f[\"path\"].endswith(\"hub/fusion\"), f[\"path\"]
fu, hd = f[\"modules\"]
assert (fu[\"module\"], fu[\"name\"], fu[\"version\"], fu[\"config_file\"]) == (\"fusion\", \"fa,fb\", \"3.2.1\", \"adapter_fusion_config.json\")
assert fu[\"weights_file\"] == \"pytorch_model_adapter_fusion.bin\" and fu[\"config\"][\"value\"] is True
assert fu[\"totals\"] == {\"tensors\": 10, \"params\": 6272}, fu[\"totals\"]
assert sum(t[\"params\"] for t in fu[\"tensors\"]) == 6272 and fu[\"tensors\"][0][\"shape\"] == [32, 32]
assert hd[\"module\"] == \"head\" and hd[\"config\"][\"label2id\"] == {\"no\": 0, \"yes\": 1}
ad, mh = h[\"modules\"]
assert ad[\"version\"] == \"adapters.1.2.0\" and ad[\"weights_file\"] == \"adapter.safetensors\"
assert mh[\"config\"][\"head_type\"] == \"multilabel_classification\" and mh[\"config\"][\"dropout_prob\"] is None
assert a[\"kind\"] == \"adapter\"
" &&
	mkdir old && cp "$HUB/oldgelu"/* old/ && af-inspect --json old >out &&
	python3 -c "import json; m = json.load(open(\"out\"))[\"files\"][0][\"modules\"][0]; assert m[\"version\"] is None, m" &&
	rm old/pytorch_adapter.bin && test_exit 1 af-inspect --json old >out 2>err &&
	test_grep "old: neither pytorch_adapter.bin nor adapter.safetensors" err &&
	test_exit 2 af-inspect --tensor x "$HUB/fusion" 2>err && test_grep "\-\-tensor reads af.s files" err
'

for arch in roberta distilbert; do
	test_expect_success "$arch: af -> hub -> af, the same tensors and predictions; AdapterHub's names and class" '
		A=$FIXTURES/arch/'$arch' &&
		af-convert --to-hub hub "$A/infer/a.safetensors" &&
		af-convert --base "$A/f32" -o back.st hub &&
		af-inspect --diff "$A/infer/a.safetensors" back.st >diff &&
		test_grep "tensors: 12 equal, 0 different" diff &&
		af-infer --base "$A/f32" --adapter back.st "$A/infer/in.jsonl" >o1 &&
		af-infer --base "$A/f32" --adapter "$A/infer/a.safetensors" "$A/infer/in.jsonl" >o2 &&
		cmp o1 o2 &&
		test_grep "\"model_type\": \"'$arch'\"" hub/adapter_config.json &&
		case '$arch' in
		roberta) test_grep "\"model_class\": \"RobertaAdapterModel\"" hub/head_config.json ;;
		distilbert) test_grep "\"model_class\": \"DistilBertAdapterModel\"" hub/head_config.json ;;
		esac &&
		test_exit 1 af-convert --base "$BASE" -o x.st hub 2>err &&
		test_grep "model_type \"'$arch'\", but the base is \"bert\"" err
	'
done

test_expect_success 'usage errors exit 2' '
	test_exit 2 af-convert --base "$BASE" "$HUB/pfeiffer" 2>err && test_grep "\-o OUT.safetensors is required" err &&
	test_exit 2 af-convert -o x.st "$HUB/pfeiffer" 2>err && test_grep "\-\-base DIR is required" err &&
	test_exit 2 af-convert --to-hub x --base "$BASE" "$INF/a.safetensors" 2>err &&
	test_exit 2 af-convert --to-hub x --format zip "$INF/a.safetensors" 2>err &&
	test_exit 2 af-convert --base "$BASE" -o x.st --name "a,b" "$HUB/pfeiffer" 2>err &&
	af-convert --base "$BASE" -o fa.st "$HUB/fa" && af-convert --base "$BASE" -o fb.st "$HUB/fb" &&
	cp fa.st keep.st && test_exit 2 af-convert --base "$BASE" --adapter fa.st --adapter fb.st \
		-o fa.st "$HUB/fusion" 2>err && cmp fa.st keep.st
'

test_done
