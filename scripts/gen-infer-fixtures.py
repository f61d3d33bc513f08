#!/usr/bin/python3
"""gen-infer-fixtures.py: PyTorch references for af-infer (tests/fixtures/infer/).

Builds adapter and fusion files in af's own format (the tensor names and __metadata__ that
lib/model.c's model_writer writes: format, name, config, heads, base {config, fingerprint},
adapters [{name, sha256, file}], created_by) on the test base tests/fixtures/encoder/f32, a few
tokenized input lines, and what a PyTorch forward of BertModel + AdapterHub adapters, fusion and
head predicts for each line, computed in float64 from the float32 weights:

  in.jsonl              input lines: different lengths, token types, an explicit padding mask,
                        keys to pass through
  a.safetensors         Pfeiffer adapter "a" (relu, bottleneck 4), head "sst": neg, pos
  b.safetensors         Pfeiffer adapter "b" (relu, bottleneck 2), head "b": regression
  ab.safetensors        attention fusion over a, b (temperature 1.5), head "target": x, y, z
  c.safetensors, d.safetensors   Houlsby adapters (swish), heads "c", "d"
  cd.safetensors        sigmoid gating fusion over c, d, head "score": regression
  CASE.expected         one line per input line: the probabilities (or the score), then, for a
                        fusion, "|" and the fusion weights per layer (mean over the line's tokens
                        with attention_mask 1): the FFN-output site of every layer, then for
                        Houlsby the attention-output site of every layer; numbers space-separated
  CASE: a (adapter a alone), b (adapter b alone: regression), ab, cd

The encoder is scripts/gen-fixtures.py's (imported, with a site hook that adds the adapters), the
adapter and fusion modules are scripts/gen-kernel-fixtures.py's AdapterHub ports. The base
fingerprint is lib/bert.c's bert_fingerprint, recomputed here (scripts/af_fingerprint.py).

Run with Debian's python3 (torch 1.13): /usr/bin/python3 scripts/gen-infer-fixtures.py
"""
import hashlib
import importlib.util
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import af_fingerprint  # noqa: E402
import stpy  # noqa: E402


def _import(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, sys.argv[:1]  # gen-fixtures reads an output directory from argv
    spec.loader.exec_module(mod)
    sys.argv = argv
    return mod


gf = _import("gen_fixtures", "gen-fixtures.py")
gk = _import("gen_kernel_fixtures", "gen-kernel-fixtures.py")

TOP = os.path.normpath(os.path.join(HERE, ".."))
BASE = os.path.join(TOP, "tests", "fixtures", "encoder", "f32")
OUT = os.path.join(TOP, "tests", "fixtures", "infer")
torch.set_default_dtype(torch.float64)

# (input_ids, token_type_ids or None, attention_mask or None, extra keys)
LINES = [
    ([2, 17, 33, 5, 61, 9, 3], None, None, {"id": "s1", "label": "pos"}),
    ([2, 44, 12, 3], [0, 0, 1, 1], None, {"id": 2, "label": "neg", "note": {"k": [1, 2.5]}}),
    ([2, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 3], None, None, {"id": "long"}),
    ([2, 30, 31, 3, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], {"id": "padded", "x": None}),
    ([2, 3], None, None, {"label": 1, "id": "short"}),
    ([2, 50, 51, 52, 53, 3], [0, 0, 0, 1, 1, 1], None, {"id": "pair"}),
]


# ---- the base --------------------------------------------------------------------------------------


def load_base():
    with open(os.path.join(BASE, "config.json")) as f:
        c = json.load(f)
    t, _ = stpy.load(os.path.join(BASE, "model.safetensors"))
    P = {}
    for name, _shape in gf.param_shapes(c):
        k = "bert." + gf.gamma_beta(name)
        P[name] = torch.from_numpy(t[k].astype("float32")).to(torch.float64)
    base_meta = {"config": {"vocab_size": c["vocab_size"], "hidden_size": c["hidden_size"],
                            "num_hidden_layers": c["num_hidden_layers"],
                            "num_attention_heads": c["num_attention_heads"],
                            "intermediate_size": c["intermediate_size"], "hidden_act": c["hidden_act"]},
                 "fingerprint": af_fingerprint.fingerprint(BASE)}
    return c, P, base_meta


# ---- weights -------------------------------------------------------------------------------------------

GEN = torch.Generator().manual_seed(20240607)


def rnd(*shape, scale=1.0):
    """float32-representable normals"""
    return (torch.randn(*shape, generator=GEN) * scale).float().double()


def fill(module, scale):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(rnd(*p.shape, scale=scale))
    module.eval()
    return module


SITE_PATH = {0: "attention.output", 1: "output"}


def sites_of(arch):
    return (1,) if arch == "pfeiffer" else (0, 1)


class AdapterSpec:
    def __init__(self, name, arch, r, act, head, labels):
        self.name, self.arch, self.r, self.act = name, arch, r, act
        self.head, self.labels = head, labels  # labels None: regression
        self.modules = {}


def make_head(H, L):
    """AdapterHub ClassificationHead: Dropout, Linear(H, H), Tanh, Dropout, Linear(H, L)"""
    return fill(torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(H, H), torch.nn.Tanh(),
                                    torch.nn.Dropout(0.1), torch.nn.Linear(H, L)), 0.3)


def make_adapter(spec, c):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    for l in range(L):
        for s in sites_of(spec.arch):
            spec.modules[(l, s)] = fill(gk.Adapter(H, spec.r, spec.act), 0.3)
    spec.head_module = make_head(H, len(spec.labels) if spec.labels else 1)
    return spec


def heads_meta(name, labels):
    return {name: labels if labels else "regression"}


def head_tensors(name, hd):
    return {"heads.%s.%s" % (name, k): v for k, v in hd.state_dict().items()}


def f32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_adapter(spec, c, base_meta):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    t = {}
    for l in range(L):
        for s in sites_of(spec.arch):
            pre = "bert.encoder.layer.%d.%s.adapters.%s." % (l, SITE_PATH[s], spec.name)
            for k, v in spec.modules[(l, s)].state_dict().items():
                t[pre + k] = v
    t.update(head_tensors(spec.head, spec.head_module))
    cfg = {"arch": spec.arch, "reduction_factor": H / spec.r, "bottleneck": spec.r,
           "non_linearity": spec.act, "hidden_size": H, "num_layers": L}
    meta = {"format": "af-adapter/1", "name": spec.name, "config": json.dumps(cfg),
            "heads": json.dumps(heads_meta(spec.head, spec.labels)), "base": json.dumps(base_meta),
            "created_by": "scripts/gen-infer-fixtures.py"}
    path = os.path.join(OUT, spec.name + ".safetensors")
    stpy.save(path, f32(t), meta)
    return path


class FusionSpec:
    def __init__(self, adapters, method, head, labels, T=1.0):
        self.adapters, self.method, self.head, self.labels, self.T = adapters, method, head, labels, T
        self.key = ",".join(a.name for a in adapters)
        self.modules = {}


def make_fusion(fs, c):
    H, L, N = c["hidden_size"], c["num_hidden_layers"], len(fs.adapters)
    for l in range(L):
        for s in sites_of(fs.adapters[0].arch):
            if fs.method == "attention":
                f = fill(gk.BertFusion(H, gk.DYNAMIC, fs.T), 0.4)
                with torch.no_grad():
                    f.value.weight.mul_(0.25).add_(torch.eye(H))
            else:
                f = fill(gk.GatingFusion(H, N, False), 0.5)
            fs.modules[(l, s)] = f
    fs.head_module = make_head(H, len(fs.labels) if fs.labels else 1)
    return fs


def write_fusion(fs, c, base_meta, paths):
    L = c["num_hidden_layers"]
    t = {}
    for l in range(L):
        for s in sites_of(fs.adapters[0].arch):
            pre = "bert.encoder.layer.%d.%s.adapter_fusion_layer.%s." % (l, SITE_PATH[s], fs.key)
            for k, v in fs.modules[(l, s)].state_dict().items():
                t[pre + k] = v
    t.update(head_tensors(fs.head, fs.head_module))
    cfg = {"arch": fs.adapters[0].arch, "method": fs.method}
    if fs.method == "gating":
        cfg["gate"] = "sigmoid"
    cfg.update({"temperature_anneal": False, "temperature": fs.T, "dropout": 0.1, "adapters_updated": 0,
                "adapter_names": [a.name for a in fs.adapters]})
    ads = [{"name": a.name, "sha256": sha256(p), "file": os.path.basename(p)}
           for a, p in zip(fs.adapters, paths)]
    meta = {"format": "af-fusion/1", "name": fs.key, "config": json.dumps(cfg),
            "heads": json.dumps(heads_meta(fs.head, fs.labels)), "base": json.dumps(base_meta),
            "adapters": json.dumps(ads), "created_by": "scripts/gen-infer-fixtures.py"}
    stpy.save(os.path.join(OUT, fs.key.replace(",", "") + ".safetensors"), f32(t), meta)


# ---- the forward -------------------------------------------------------------------------------------


def predict(c, P, adapters, fusion, line):
    """One line through BertModel with AdapterHub's AdapterLayer at the hooked sites (lib/site.h):
    pfeiffer x = LN(h + r), houlsby x = h; one adapter: LN(up(x) + h + r); fused:
    LN(fusion(x, [up_i(x)]) + h + r). Returns (probs or [score], {(l, s): per-token weights})."""
    ids, tt, mask, _ = line
    n = len(ids)
    ids_t = torch.tensor([ids])
    tt_t = torch.tensor([tt if tt else [0] * n])
    mask_t = torch.tensor([mask if mask else [1] * n])
    L, eps = c["num_hidden_layers"], c["layer_norm_eps"]
    arch = adapters[0].arch
    where = {}
    for l in range(L):
        for s in sites_of(arch):
            where[id(P["encoder.layer.%d.%s.LayerNorm.weight" % (l, SITE_PATH[s])])] = (l, s)
    weights = {}

    def site(h, r, w, b, eps_):
        l, s = where[id(w)]
        x = F.layer_norm(h + r, (h.shape[-1],), w, b, eps_) if arch == "pfeiffer" else h
        if fusion is None:
            o = adapters[0].modules[(l, s)](x)
        else:
            ups = torch.stack([a.modules[(l, s)](x) for a in adapters], dim=2)  # [1, S, N, H]
            f = fusion.modules[(l, s)]
            if isinstance(f, gk.BertFusion):
                o, p = f(x, ups, ups)
            else:
                o, p = f(x[0], ups[0])
                o, p = o[None], p[None]
            weights[(l, s)] = p[0]
        return F.layer_norm(o + h + r, (h.shape[-1],), w, b, eps_)

    gf.hook_site = site
    hooks = {(l, s) for l in range(L) for s in sites_of(arch)}
    hidden, _ = gf.forward(c, P, ids_t, tt_t, mask_t, hooks)
    head = fusion.head_module if fusion is not None else adapters[0].head_module
    labels = fusion.labels if fusion is not None else adapters[0].labels
    logits = head(hidden[-1][:, 0])[0]
    out = torch.softmax(logits, dim=-1) if labels else logits
    real = mask_t[0].bool()
    fw = {k: v[real].mean(dim=0) for k, v in weights.items()}
    return out, fw


def write_expected(name, c, P, adapters, fusion):
    rows = []
    for line in LINES:
        out, fw = predict(c, P, adapters, fusion, line)
        vals = ["%.9g" % v for v in out.tolist()]
        if fusion is not None:
            vals.append("|")
            L = c["num_hidden_layers"]
            for s in (1, 0):
                for l in range(L):
                    if (l, s) in fw:
                        vals += ["%.9g" % v for v in fw[(l, s)].tolist()]
        rows.append(" ".join(vals))
    with open(os.path.join(OUT, name + ".expected"), "w") as f:
        f.write("\n".join(rows) + "\n")


def write_input():
    with open(os.path.join(OUT, "in.jsonl"), "w") as f:
        for ids, tt, mask, extra in LINES:
            d = {}
            for k, v in extra.items():
                if k == "id":
                    d[k] = v
            d["input_ids"] = ids
            if tt:
                d["token_type_ids"] = tt
            if mask:
                d["attention_mask"] = mask
            for k, v in extra.items():
                if k != "id":
                    d[k] = v
            f.write(json.dumps(d, separators=(",", ":")) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    c, P, base_meta = load_base()
    with torch.no_grad():
        a = make_adapter(AdapterSpec("a", "pfeiffer", 4, "relu", "sst", ["neg", "pos"]), c)
        b = make_adapter(AdapterSpec("b", "pfeiffer", 2, "relu", "b", None), c)
        ab = make_fusion(FusionSpec([a, b], "attention", "target", ["x", "y", "z"], T=1.5), c)
        cc = make_adapter(AdapterSpec("c", "houlsby", 4, "swish", "c", ["0", "1"]), c)
        d = make_adapter(AdapterSpec("d", "houlsby", 2, "swish", "d", ["u", "v", "w"]), c)
        cd = make_fusion(FusionSpec([cc, d], "gating", "score", None), c)
        pa, pb = write_adapter(a, c, base_meta), write_adapter(b, c, base_meta)
        pc, pd = write_adapter(cc, c, base_meta), write_adapter(d, c, base_meta)
        write_fusion(ab, c, base_meta, [pa, pb])
        write_fusion(cd, c, base_meta, [pc, pd])
        write_input()
        write_expected("a", c, P, [a], None)
        write_expected("b", c, P, [b], None)
        write_expected("ab", c, P, [a, b], ab)
        write_expected("cd", c, P, [cc, d], cd)
    print("wrote %s" % os.path.relpath(OUT, TOP))


if __name__ == "__main__":
    main()
