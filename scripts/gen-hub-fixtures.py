#!/usr/bin/python3
"""gen-hub-fixtures.py: adapters, heads and fusion layers saved by the real AdapterHub
(adapter-transformers 3.2.1, unmodified), and AdapterHub's own predictions on them, for
af-convert's tests (tests/fixtures/hub/).

    AT_SRC=build/hub-src /usr/bin/python3 scripts/gen-hub-fixtures.py
    AT_SRC=build/hub-src /usr/bin/python3 scripts/gen-hub-fixtures.py --check-export

AT_SRC is the directory ../shared/peer/setup_adapterhub.sh extracted AdapterHub and
huggingface_hub into (default build/hub-src); Debian's python3-torch runs it. The base is af's
test encoder tests/fixtures/encoder/f32 (2 layers, hidden 32), loaded into AdapterHub's
BertAdapterModel. Every adapter's, fusion's and head's weights are drawn at random (larger than
AdapterHub's init, so that a wrong mapping shows), saved with save_adapter /
save_adapter_fusion, then loaded into a fresh model with load_adapter / load_adapter_fusion
(AdapterHub's own loader, head included), and that model's outputs on in.jsonl (one input at a
time, attention mask honoured) are written as CASE.expected: one line per input, the
probabilities (softmax of the logits; a multi-label head's per-label sigmoids) or, for a
one-output head, the score.

  pfeiffer/   Pfeiffer adapter "pf" (reduction 8: bottleneck 4, relu), head: 2 labels neg, pos
  houlsby/    Houlsby adapter "ho" (reduction 4, swish), head: 3 labels
  leaveout/   Pfeiffer "lo", leave_out [0] (no adapter in layer 0), head: regression
  perlayer/   Pfeiffer "pl", reduction_factor {"0": 16, "1": 4, "default": 8}, gelu, scaling
              0.5, head: 2 labels
  multilabel/ Pfeiffer "mlh" (reduction 8) with a multi-label head (MultiLabelClassificationHead,
              3 labels toxic, rude, spam)
  oldgelu/    Pfeiffer "og" whose adapter_config.json has no "version" and says "gelu": as a
              pre-v2 hub adapter, which AdapterHub reads as gelu_new (the tanh form; on this
              small model the two differ by only ~1e-5 in the probabilities, so the test
              checks the activation af records too)
  fa/, fb/    Pfeiffer adapters "fa" (reduction 8) and "fb" (reduction 16), no heads
  fusion/     dynamic (attention) fusion "fa,fb" with its head "fa,fb" (2 labels)
  ha/, hb/, hfusion/   the same over Houlsby adapters (reductions 8 and 4): fusion at both sites
  CASE.expected for pfeiffer houlsby leaveout perlayer oldgelu multilabel fusion hfusion
  da/, db/, dfusion/   --drop-fixtures only: Pfeiffer adapters "da" and "db" that both leave out
              layer 0, and their attention fusion with its head; dfusion.expected
  ma/, mb/, mfusion/   --drop-fixtures only: "ma" leaves out layer 0 and "mb" nothing, and their
              fusion, which AdapterHub computes in layer 0 over "mb" alone (af refuses it)
  evil/, legacy/   pfeiffer's config with a hostile pickle, and with the pre-1.6 format
  deflated/   pfeiffer with its checkpoint re-zipped with deflate

--drop-fixtures: writes only the da/db/dfusion and ma/mb/mfusion cases (AdapterDrop), leaving
the others as they are.

--check-export: the other direction. bin/af-convert --to-hub exports af's own fixture files
(tests/fixtures/infer: a, b, c and the fusion ab), AdapterHub loads the directories
(load_adapter, load_adapter_fusion, their heads), and its outputs are compared with bin/af-infer's
on the same inputs; then AdapterHub's own fixtures (leaveout, perlayer, oldgelu, houlsby) go
(and the fusion with its adapters) go through af-convert and back out with --to-hub, and
AdapterHub's outputs on the result are compared with CASE.expected; and a multi-label adapter
af-train-adapter trains here goes out to AdapterHub, whose per-label probabilities are compared
with af-infer's. Prints the largest difference per case and exits 1 above 1e-4.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.abspath(os.environ.get("AT_SRC", os.path.join(TOP, "build", "hub-src"))))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import stpy  # noqa: E402
from transformers import BertConfig  # noqa: E402
from transformers.adapters import BertAdapterModel, HoulsbyConfig, PfeifferConfig  # noqa: E402
from transformers.adapters.composition import Fuse  # noqa: E402

BASE = os.path.join(TOP, "tests", "fixtures", "encoder", "f32")
OUT = os.path.join(TOP, "tests", "fixtures", "hub")

INPUTS = [
    {"id": "a", "input_ids": [2, 17, 33, 5, 61, 9, 3]},
    {"id": "b", "input_ids": [2, 44, 12, 3], "token_type_ids": [0, 0, 1, 1]},
    {"id": "c", "input_ids": [2, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3]},
    {"id": "d", "input_ids": [2, 30, 31, 3, 0, 0], "attention_mask": [1, 1, 1, 1, 0, 0]},
    {"id": "e", "input_ids": [2, 3]},
    {"id": "f", "input_ids": [2, 50, 51, 52, 53, 3], "token_type_ids": [0, 0, 0, 1, 1, 1]},
]


def new_model():
    cfg = BertConfig.from_json_file(os.path.join(BASE, "config.json"))
    m = BertAdapterModel(cfg)
    w, _ = stpy.load(os.path.join(BASE, "model.safetensors"))
    sd = {}
    for k, v in w.items():
        if k.startswith("cls."):
            continue  # the MLM head: not part of BertModel
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        sd[k] = torch.tensor(v.copy())
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all("pooler" in k or "position_ids" in k for k in missing), missing
    return m.eval()


def randomize(m, substr, gen, scale=1.0):
    """Weights N(0, 0.3), biases N(0, 0.1) (times scale), for every parameter whose name holds
    substr; a fusion value matrix stays near the identity, as trained ones do."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if substr not in name:
                continue
            r = torch.randn(p.shape, generator=gen)
            if name.endswith("value.weight"):
                p.copy_(torch.eye(p.shape[0]) + 0.1 * r)
            else:
                p.copy_(scale * (0.3 if p.dim() > 1 else 0.1) * r)


def predict(m):
    out = []
    multilabel = m.heads[m.active_head].config["head_type"] == "multilabel_classification"
    with torch.no_grad():
        for x in INPUTS:
            ids = torch.tensor([x["input_ids"]])
            tt = torch.tensor([x.get("token_type_ids", [0] * len(x["input_ids"]))])
            am = torch.tensor([x.get("attention_mask", [1] * len(x["input_ids"]))])
            logits = m(input_ids=ids, token_type_ids=tt, attention_mask=am).logits[0].double()
            if multilabel:  # independent yes/no per label: MultiLabelClassificationHead's BCE
                out.append(torch.sigmoid(logits).tolist())
            else:
                out.append(logits.tolist() if logits.numel() == 1 else torch.softmax(logits, -1).tolist())
    return out


def write_expected(case, rows):
    with open(os.path.join(OUT, case + ".expected"), "w") as f:
        for r in rows:
            f.write(" ".join("%.9g" % v for v in r) + "\n")


def adapter_case(case, name, config, head, seed, edit=None, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    m = new_model()
    m.add_adapter(name, config=config)
    head(m, name)
    randomize(m, "adapters." + name + ".", gen, scale)
    randomize(m, "heads." + name + ".", gen, scale)
    d = os.path.join(OUT, case)
    shutil.rmtree(d, ignore_errors=True)
    m.save_adapter(d, name)
    if edit:
        edit(d)
    # What AdapterHub itself reads back from the directory is the reference.
    m2 = new_model()
    loaded = m2.load_adapter(d)
    m2.set_active_adapters(loaded)
    write_expected(case, predict(m2))


def two_labels(names):
    return lambda m, n: m.add_classification_head(n, num_labels=2, id2label=dict(enumerate(names)))


def make_old(d):
    p = os.path.join(d, "adapter_config.json")
    c = json.load(open(p))
    del c["version"]
    c["config"]["non_linearity"] = "gelu"
    json.dump(c, open(p, "w"), indent=2, sort_keys=True)


def fusion_case(case, a, b, config_a, config_b, seed, expected=True):
    gen = torch.Generator().manual_seed(seed)
    m = new_model()
    m.add_adapter(a, config=config_a)
    m.add_adapter(b, config=config_b)
    m.add_adapter_fusion(Fuse(a, b))
    m.add_classification_head(a + "," + b, num_labels=2, id2label={0: "no", 1: "yes"})
    randomize(m, "adapters.", gen)
    randomize(m, "adapter_fusion_layer", gen)
    randomize(m, "heads.", gen)
    for n in (a, b, case):
        shutil.rmtree(os.path.join(OUT, n), ignore_errors=True)
    m.save_adapter(os.path.join(OUT, a), a, with_head=False)
    m.save_adapter(os.path.join(OUT, b), b, with_head=False)
    m.save_adapter_fusion(os.path.join(OUT, case), a + "," + b, with_head=True)
    m2 = new_model()
    m2.load_adapter(os.path.join(OUT, a))
    m2.load_adapter(os.path.join(OUT, b))
    m2.load_adapter_fusion(os.path.join(OUT, case), set_active=True)
    assert a + "," + b in m2.heads, "the fusion's head was not loaded"
    if expected:
        write_expected(case, predict(m2))


def generate():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "in.jsonl"), "w") as f:
        for x in INPUTS:
            f.write(json.dumps(x, separators=(",", ":")) + "\n")
    adapter_case("pfeiffer", "pf", PfeifferConfig(reduction_factor=8), two_labels(["neg", "pos"]), 1)
    adapter_case("houlsby", "ho", HoulsbyConfig(reduction_factor=4),
                 lambda m, n: m.add_classification_head(n, num_labels=3), 2)
    adapter_case("leaveout", "lo", PfeifferConfig(reduction_factor=8, leave_out=[0]),
                 lambda m, n: m.add_classification_head(n, num_labels=1), 3)
    adapter_case("perlayer", "pl",
                 PfeifferConfig(reduction_factor={"0": 16, "1": 4, "default": 8},
                                non_linearity="gelu", scaling=0.5),
                 two_labels(["x", "y"]), 4)
    adapter_case("oldgelu", "og", PfeifferConfig(reduction_factor=8, non_linearity="gelu_new"),
                 two_labels(["u", "v"]), 6, edit=make_old)
    adapter_case("multilabel", "mlh", PfeifferConfig(reduction_factor=8),
                 lambda m, n: m.add_classification_head(
                     n, num_labels=3, multilabel=True,
                     id2label={0: "toxic", 1: "rude", 2: "spam"}), 8)
    fusion_case("fusion", "fa", "fb", PfeifferConfig(reduction_factor=8),
                PfeifferConfig(reduction_factor=16), 5)
    fusion_case("hfusion", "ha", "hb", HoulsbyConfig(reduction_factor=8),
                HoulsbyConfig(reduction_factor=4), 7)
    bad_files()
    print("wrote", OUT)


def bad_files():
    """evil/: the Pfeiffer directory with a pickle that would run `touch` (pickle's own
    GLOBAL os.system + REDUCE, what a hostile checkpoint does); legacy/: the same adapter saved
    in PyTorch's pre-1.6 format (_use_new_zipfile_serialization=False)."""
    import zipfile
    for case in ("evil", "legacy"):
        d = os.path.join(OUT, case)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shutil.copy(os.path.join(OUT, "pfeiffer", "adapter_config.json"), d)
    pkl = b"\x80\x02cos\nsystem\n(X\x1f\x00\x00\x00touch /tmp/af-convert-pwned.txttR."
    pkl = pkl.replace(b"\x1f\x00", bytes([len("touch /tmp/af-convert-pwned.txt")]) + b"\x00")
    with zipfile.ZipFile(os.path.join(OUT, "evil", "pytorch_adapter.bin"), "w") as z:
        z.writestr("pytorch_adapter/data.pkl", pkl)
        z.writestr("pytorch_adapter/version", "3\n")
    # deflated/: the Pfeiffer directory with its checkpoint re-zipped with deflate, as a user's
    # zip tool might leave it (torch.load reads it; af must too)
    d = os.path.join(OUT, "deflated")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.join(OUT, "pfeiffer"), d)
    src = zipfile.ZipFile(os.path.join(OUT, "pfeiffer", "pytorch_adapter.bin"))
    with zipfile.ZipFile(os.path.join(d, "pytorch_adapter.bin"), "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    assert torch.load(os.path.join(d, "pytorch_adapter.bin")).keys()
    sd = torch.load(os.path.join(OUT, "pfeiffer", "pytorch_adapter.bin"))
    torch.save(sd, os.path.join(OUT, "legacy", "pytorch_adapter.bin"),
               _use_new_zipfile_serialization=False)


# ---- --check-export ------------------------------------------------------------------------

def af_probs(args, inp):
    r = subprocess.run([os.path.join(TOP, "bin", "af-infer"), "--base", BASE] + args + [inp],
                       capture_output=True, text=True, check=True)
    rows = []
    for line in r.stdout.splitlines():
        o = json.loads(line)
        rows.append(o["probs"] if "probs" in o else [o["score"]])
    return rows


def to_hub(out, args):
    subprocess.run([os.path.join(TOP, "bin", "af-convert"), "--to-hub", out] + args, check=True)


def check_drop(tmp, inp):
    """AdapterDrop: an adapter trained with --drop-layers 1, and a fusion (--drop-layers 0) of
    it with one trained in every layer, which therefore exists in layer 1 only; exported, their
    leave_out keeps AdapterHub's model from running anything in layer 0."""
    import random
    rnd = random.Random(5)
    data = os.path.join(tmp, "drop.jsonl")
    with open(data, "w") as f:
        for _ in range(64):
            y = rnd.randrange(2)
            ids = [2] + [rnd.randrange(5 + 29 * y, 34 + 29 * y) for _ in range(rnd.randrange(3, 8))] + [3]
            f.write(json.dumps({"input_ids": ids, "label": "pos" if y else "neg"}) + "\n")
    train = [os.path.join(TOP, "bin", "af-train-adapter"), "--base", BASE, "--threads", "1",
             "--epochs", "2", "--batch-size", "8", "--lr", "1e-2", "--bottleneck", "4", "-q"]
    x, y, fus = (os.path.join(tmp, n) for n in ("x.af", "y.af", "xy.af"))
    subprocess.run(train + ["--name", "x", "--drop-layers", "1", "-o", x, data], check=True)
    subprocess.run(train + ["--name", "y", "--seed", "3", "-o", y, data], check=True)
    subprocess.run([os.path.join(TOP, "bin", "af-fuse"), "--base", BASE, "--threads", "1",
                    "--epochs", "2", "--batch-size", "8", "--lr", "1e-2", "-q", "--adapter", x,
                    "--adapter", y, "--name", "t", "-o", fus, data], check=True)
    worst = {}
    d = os.path.join(tmp, "x.hub")
    to_hub(d, [x])
    if json.load(open(os.path.join(d, "adapter_config.json")))["config"]["leave_out"] != [0]:
        sys.exit("drop: the exported adapter's leave_out is not [0]")
    m = new_model()
    m.set_active_adapters(m.load_adapter(d))
    m.active_head = list(m.heads)[0]
    worst["drop: adapter K=1"] = max(abs(p - q) for r1, r2 in zip(predict(m), af_probs(["--adapter", x], inp))
                                     for p, q in zip(r1, r2))
    d = os.path.join(tmp, "xy.hub")
    to_hub(d, [fus, "--adapter", x, "--adapter", y])
    m = new_model()
    for n in ("x", "y"):
        m.load_adapter(os.path.join(d, n))
    m.load_adapter_fusion(os.path.join(d, "fusion"), set_active=True)
    m.active_head = list(m.heads)[0]
    want = af_probs(["--adapter", x, "--adapter", y, "--fusion", fus], inp)
    worst["drop: fusion K=0,1"] = max(abs(p - q) for r1, r2 in zip(predict(m), want) for p, q in zip(r1, r2))
    return worst


def check_export():
    infer = os.path.join(TOP, "tests", "fixtures", "infer")
    tmp = tempfile.mkdtemp(prefix="af-hub-export.")
    inp = os.path.join(tmp, "in.jsonl")
    with open(inp, "w") as f:
        for x in INPUTS:
            f.write(json.dumps(x) + "\n")
    worst, bad = {}, False
    for case in ("a", "b", "c"):
        f = os.path.join(infer, case + ".safetensors")
        d = os.path.join(tmp, case)
        to_hub(d, [f])
        m = new_model()
        name = m.load_adapter(d)
        m.set_active_adapters(name)
        # af's heads keep their task's name, which AdapterHub activates only when asked
        m.active_head = list(m.heads)[0]
        worst[case] = max(abs(p - q) for r1, r2 in zip(predict(m), af_probs(["--adapter", f], inp))
                          for p, q in zip(r1, r2))
    fa, fb = (os.path.join(infer, n + ".safetensors") for n in "ab")
    fus = os.path.join(infer, "ab.safetensors")
    d = os.path.join(tmp, "ab")
    to_hub(d, [fus, "--adapter", fa, "--adapter", fb])
    m = new_model()
    for n in ("a", "b"):
        m.load_adapter(os.path.join(d, n))
    m.load_adapter_fusion(os.path.join(d, "fusion"), set_active=True)
    m.active_head = list(m.heads)[0]
    got = predict(m)
    want = af_probs(["--adapter", fa, "--adapter", fb, "--fusion", fus], inp)
    worst["ab"] = max(abs(p - q) for r1, r2 in zip(got, want) for p, q in zip(r1, r2))
    # hub -> af -> hub: AdapterHub's own fixtures, imported and exported again, still give
    # AdapterHub's probabilities (leave_out and per-layer factors written back as they were)
    for case in ("leaveout", "perlayer", "oldgelu", "houlsby", "multilabel"):
        f = os.path.join(tmp, case + ".safetensors")
        subprocess.run([os.path.join(TOP, "bin", "af-convert"), "--base", BASE, "-o", f,
                        os.path.join(OUT, case)], check=True)
        d = os.path.join(tmp, case + ".hub")
        to_hub(d, [f])
        m = new_model()
        m.set_active_adapters(m.load_adapter(d))
        want = [list(map(float, line.split())) for line in open(os.path.join(OUT, case + ".expected"))]
        worst["hub->af->hub " + case] = max(abs(p - q) for r1, r2 in zip(predict(m), want)
                                            for p, q in zip(r1, r2))
    # and the fusions: their adapters and themselves into af, out again, AdapterHub's outputs
    conv = os.path.join(TOP, "bin", "af-convert")
    for case, a, b in (("fusion", "fa", "fb"), ("hfusion", "ha", "hb"), ("dfusion", "da", "db")):
        fa, fb, fus = (os.path.join(tmp, n + ".af") for n in (a, b, case))
        for n, f in ((a, fa), (b, fb)):
            subprocess.run([conv, "--base", BASE, "-o", f, os.path.join(OUT, n)], check=True)
        subprocess.run([conv, "--base", BASE, "--adapter", fa, "--adapter", fb, "-o", fus,
                        os.path.join(OUT, case)], check=True)
        d = os.path.join(tmp, case + ".hub")
        to_hub(d, [fus, "--adapter", fa, "--adapter", fb])
        m = new_model()
        for n in (a, b):
            m.load_adapter(os.path.join(d, n))
        m.load_adapter_fusion(os.path.join(d, "fusion"), set_active=True)
        m.active_head = list(m.heads)[0]
        want = [list(map(float, line.split())) for line in open(os.path.join(OUT, case + ".expected"))]
        worst["hub->af->hub " + case] = max(abs(p - q) for r1, r2 in zip(predict(m), want)
                                            for p, q in zip(r1, r2))
    # af's own multi-label head: trained by af-train-adapter, exported, loaded by AdapterHub
    data = os.path.join(tmp, "ml.jsonl")
    gen = torch.Generator().manual_seed(11)
    with open(data, "w") as f:
        for i in range(64):
            ids = [2] + torch.randint(5, 60, (int(torch.randint(3, 9, (1,), generator=gen)),),
                                      generator=gen).tolist() + [3]
            names = [n for n, lo in (("x", 5), ("y", 25), ("z", 45)) if any(lo <= t < lo + 20 for t in ids[1:3])]
            f.write(json.dumps({"input_ids": ids, "label": names}) + "\n")
    f = os.path.join(tmp, "ml.st")
    subprocess.run([os.path.join(TOP, "bin", "af-train-adapter"), "--base", BASE, "--name", "ml",
                    "--multilabel", "--epochs", "5", "--lr", "1e-2", "--bottleneck", "4",
                    "--quiet", "-o", f, data], check=True)
    d = os.path.join(tmp, "ml.hub")
    to_hub(d, [f])
    m = new_model()
    m.set_active_adapters(m.load_adapter(d))
    m.active_head = list(m.heads)[0]
    assert m.heads[m.active_head].config["head_type"] == "multilabel_classification"
    worst["af multilabel"] = max(abs(p - q) for r1, r2 in zip(predict(m), af_probs(["--adapter", f], inp))
                                 for p, q in zip(r1, r2))
    worst.update(check_drop(tmp, inp))
    for k, v in worst.items():
        print("%-22s AdapterHub vs reference: max |diff| %.3g" % (k, v))
        bad |= v > 1e-4
    shutil.rmtree(tmp)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    torch.manual_seed(0)
    if "--check-export" in sys.argv[1:]:
        check_export()
    elif "--drop-fixtures" in sys.argv[1:]:
        fusion_case("dfusion", "da", "db", PfeifferConfig(reduction_factor=8, leave_out=[0]),
                    PfeifferConfig(reduction_factor=16, leave_out=[0]), 8)
        fusion_case("mfusion", "ma", "mb", PfeifferConfig(reduction_factor=8, leave_out=[0]),
                    PfeifferConfig(reduction_factor=16), 9, expected=False)
        print("wrote the AdapterDrop cases in", OUT)
    else:
        generate()
