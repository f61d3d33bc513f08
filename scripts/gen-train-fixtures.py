#!/usr/bin/python3
"""gen-train-fixtures.py: PyTorch references for three training steps (tests/fixtures/train/).

af-train-adapter and af-fuse promise (lib/README.md, "The model") that with dropout 0 and one batch per epoch a run
equals the same steps in PyTorch. This script takes those steps: from fixed initial weights and a
fixed batch it runs, per case, 3 AdamW steps with the Hugging Face Trainer's machinery (linear
schedule with optional warmup, clip_grad_norm_ at 1.0, decoupled weight decay not applied to
biases) and writes what tests/parity/train.c needs to repeat them through the library:

  base/                  a tiny random BERT in Hugging Face layout (config.json, model.safetensors);
                         2 layers, hidden 16, 2 heads, vocab 64, 16 positions
  adapters/*.safetensors af adapter files (metadata per af-files(5), the base's fingerprint) that
                         the fusion cases load through model_load_adapters
  cls.jsonl reg.jsonl multi.jsonl   the batches (6 examples each)
  CASE.safetensors       __metadata__: the case (what to build, the training options);
                         NAME          the initial value of every parameter the output file
                                       holds (frozen adapters come from adapters/), AdapterHub's
                                       names
                         grad.NAME     d loss / d NAME at the initial weights (first step, before
                                       clipping), for every trainable parameter
                         final.NAME    those parameters after 3 steps
                         loss          the loss of each of the 3 steps [3]

The model is assembled from the other fixture scripts rather than copied: the encoder from
gen-fixtures.py (its forward with a site hook), the Adapter, BertFusion (Dynamic/Static),
multihead, weighted and gating modules from gen-kernel-fixtures.py, which follow AdapterHub's
adapter-transformers 3.2.1 line by line and are themselves checked against the C kernels. The
site wiring is AdapterLayer's (see lib/site.h). Everything runs in float64 from float32 initial
weights, so the references are the exact answer and independent of torch's float32 kernels.

The fusion regulariser 0.01·Σ‖I − Wv‖²_F is added to the loss before backward, as lib/README.md ("The model")
states and af does. AdapterHub does it differently: its AdapterTrainerCallback.on_step_end calls
get_fusion_regularization_loss().backward() after optimizer.step() and zero_grad(), so the
regulariser's gradient joins the *next* step's gradient (clipped with it) and the last step's is
never applied (older adapter-transformers trainers added it right before clipping, like af).

Run with Debian's python3 (torch 1.13): /usr/bin/python3 scripts/gen-train-fixtures.py
"""
import copy
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import af_fingerprint  # noqa: E402
import stpy  # noqa: E402


def _import(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


enc = _import("gen_fixtures", "gen-fixtures.py")  # sets float64 as the default dtype
kern = _import("gen_kernel_fixtures", "gen-kernel-fixtures.py")

OUT = os.path.join(HERE, "..", "tests", "fixtures", "train")
STEPS = 3

# ---- the base -----------------------------------------------------------------------------------


def make_base():
    """A 2-layer hidden-16 BERT with gen-fixtures.py's random weights (scale 0.2, embeddings 0.5:
    token information reaches [CLS], so adapters on it can learn something). HF layout, "bert."
    prefix, weight/bias names, F32. Returns (config, float64 parameters without the prefix,
    fingerprint as lib/bert.c computes it: scripts/af_fingerprint.py)."""
    c = enc.config(2, "gelu", 1e-12)
    c.update(hidden_size=16, num_attention_heads=2, intermediate_size=32)  # small fixtures
    P = enc.random_params(c, 11)
    d = os.path.join(OUT, "base")
    os.makedirs(d, exist_ok=True)
    enc.write_config(d, c)
    path = os.path.join(d, "model.safetensors")
    stpy.save(path, {"bert." + k: v for k, v in P.items()}, {"format": "pt"})
    fp = af_fingerprint.fingerprint(d)
    return c, {k: v.to(torch.float64) for k, v in P.items()}, fp


# ---- data ---------------------------------------------------------------------------------------

# Six examples of lengths 4..9 ([CLS]=2 ... [SEP]=3), some with a second segment.
IDS = [[2, 17, 33, 5, 61, 9, 3], [2, 44, 12, 3], [2, 8, 8, 40, 3, 21, 52, 3],
       [2, 63, 30, 11, 3], [2, 7, 19, 25, 36, 48, 59, 14, 3], [2, 50, 3, 27, 3]]
TYPES = [[0] * 7, [0] * 4, [0, 0, 0, 0, 0, 1, 1, 1], [0] * 5, [0] * 9, [0, 0, 0, 1, 1]]
CLS_LABELS = ["neg", "neu", "pos"]  # sorted: af's label ids are their order
CLS_Y = ["pos", "neg", "neu", "pos", "neg", "neu"]
REG_Y = [0.75, -1.25, 0.5, 2.0, -0.25, 1.0]
MULTI = [("a", 1), ("b", 0.5), ("a", 0), ("a", 1), ("b", -1.5), ("b", 2.25)]


def write_data():
    def dump(name, rows):
        with open(os.path.join(OUT, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")

    base = [{"input_ids": i, "token_type_ids": t} for i, t in zip(IDS, TYPES)]
    dump("cls.jsonl", [dict(b, label=y) for b, y in zip(base, CLS_Y)])
    dump("reg.jsonl", [dict(b, label=y) for b, y in zip(base, REG_Y)])
    dump("multi.jsonl", [dict(b, task=t, label=y) for b, (t, y) in zip(base, MULTI)])


def batch():
    B, S = len(IDS), max(len(i) for i in IDS)
    ids = torch.zeros((B, S), dtype=torch.long)
    tt = torch.zeros((B, S), dtype=torch.long)
    mask = torch.zeros((B, S), dtype=torch.long)
    for b, (i, t) in enumerate(zip(IDS, TYPES)):
        ids[b, :len(i)] = torch.tensor(i)
        tt[b, :len(t)] = torch.tensor(t)
        mask[b, :len(i)] = 1
    return ids, tt, mask


# ---- the model ----------------------------------------------------------------------------------

SITE_PATH = {0: "attention.output", 1: "output"}


def rnd(*shape, scale):
    return kern.rnd(*shape, scale=scale)


def new_adapter(H, r, act):
    """kern.Adapter with weights away from AdapterHub's N(0, 0.02) init, so it changes the
    hidden states visibly."""
    ad = kern.Adapter(H, r, act)
    with torch.no_grad():
        for p in ad.parameters():
            p.copy_(rnd(*p.shape, scale=0.2))
    return ad


def new_fusion(method, H, N, heads=4, gate_softmax=False, T=1.0):
    if method in ("attention", "static"):
        f = kern.BertFusion(H, kern.DYNAMIC if method == "attention" else kern.STATIC, T)
    elif method == "multihead":
        f = kern.MultiheadFusion(H, heads, T)
    elif method == "weighted":
        f = kern.WeightedFusion(N)
    else:
        f = kern.GatingFusion(H, N, gate_softmax)
    f.eval()  # dropout off (af runs with --dropout 0)
    with torch.no_grad():
        for name, p in f.named_parameters():
            p.copy_(rnd(*p.shape, scale=1.0 if method == "weighted" else 0.1))
        if method == "attention":  # near AdapterHub's identity init, far enough for the regulariser
            f.value.weight.add_(torch.eye(H))
    return f


def new_head(H, L):
    """AdapterHub's ClassificationHead (layers=2), as gen-kernel-fixtures.py builds it."""
    hd = nn.Sequential(nn.Dropout(0.0), nn.Linear(H, H), nn.Tanh(), nn.Dropout(0.0), nn.Linear(H, L))
    with torch.no_grad():
        for p in hd.parameters():
            p.copy_(rnd(*p.shape, scale=0.2))
    return hd


class Model:
    """Frozen base + adapters at the sites of `arch` (+ a fusion per site) + heads, and the loss
    af's model_run computes: the mean over the batch of each row's loss under its own head,
    plus the fusion regulariser."""

    def __init__(self, cfg, P, arch, adapters, fusions, heads):
        self.cfg, self.P, self.arch = cfg, P, arch
        self.adapters = adapters  # {(l, s): [(name, Adapter)]}
        self.fusions = fusions    # {(l, s): module} or {}
        self.heads = heads        # {task: (Sequential, regression)}
        self.fusion_key = None
        self.T = 1.0
        # gen-fixtures.py's forward calls the module-level hook_site(h, r, ln_w, ln_b, eps) at the
        # sites it is told to hook; the LayerNorm weight tensor says which site it is.
        self.site_of = {id(P["encoder.layer.%d.%s.LayerNorm.weight" % (l, SITE_PATH[s])]): (l, s)
                        for (l, s) in adapters}

    def site(self, h, r, w, b, eps):
        """AdapterLayer: pfeiffer x = LN(h + r), houlsby x = h; out = LN(c + h + r) with c the
        adapter's up (one adapter) or the fused value (site.h)."""
        l, s = self.site_of[id(w)]
        H = h.shape[-1]
        x = F.layer_norm(h + r, (H,), w, b, eps) if self.arch == "pfeiffer" else h
        ads = self.adapters[(l, s)]
        if not self.fusions:
            c = ads[0][1](x)
        else:
            f = self.fusions[(l, s)]
            if hasattr(f, "T"):
                f.T = self.T
            shape = x.shape
            xm = x.reshape(-1, H)
            ups = torch.stack([ad(xm) for _, ad in ads], dim=1)  # [M, N, H]
            c, _ = kern.fuse(f, xm, ups)
            c = c.reshape(shape)
        return F.layer_norm(c + h + r, (H,), w, b, eps)

    def params(self):
        """(af name, tensor) for every parameter, in any order."""
        out = []
        for (l, s), ads in sorted(self.adapters.items()):
            for name, ad in ads:
                pre = "bert.encoder.layer.%d.%s.adapters.%s." % (l, SITE_PATH[s], name)
                out += [(pre + n, p) for n, p in ad.named_parameters()]
        for (l, s), f in sorted(self.fusions.items()):
            pre = "bert.encoder.layer.%d.%s.adapter_fusion_layer.%s." % (l, SITE_PATH[s], self.fusion_key)
            out += [(pre + n, p) for n, p in f.named_parameters()]
        for task, (hd, _) in self.heads.items():
            out += [("heads.%s.%s" % (task, n), p) for n, p in hd.named_parameters()]
        return out

    def loss(self, ids, tt, mask, tasks, gold):
        enc.hook_site = self.site
        hidden, _ = enc.forward(self.cfg, self.P, ids, tt, mask, hooks=set(self.adapters))
        cls = hidden[-1][:, 0]
        B = ids.shape[0]
        total = 0.0
        for task, (hd, regression) in self.heads.items():
            rows = [b for b in range(B) if tasks[b] == task]
            if not rows:
                continue
            z = hd(cls[rows])
            if regression:
                part = F.mse_loss(z[:, 0], torch.tensor([gold[b] for b in rows]), reduction="sum")
            else:
                part = F.cross_entropy(z, torch.tensor([int(gold[b]) for b in rows]), reduction="sum")
            total = total + part
        total = total / B
        for f in self.fusions.values():  # AdapterHub get_fusion_regularization_loss
            if isinstance(f, kern.BertFusion) and f.config["value"]:
                H = f.value.weight.shape[0]
                total = total + 0.01 * (torch.eye(H) - f.value.weight).pow(2).sum()
        return total


def hf_factor(k, T, W):
    """get_linear_schedule_with_warmup's lr_lambda"""
    if k < W:
        return k / max(1, W)
    return max(0.0, (T - k) / max(1, T - W))


def train(model, trainable, groups, opt, data):
    """The Trainer's inner loop for STEPS steps on one batch. groups: [(lr, [names])]. Returns
    the losses and the first step's gradients (before clipping)."""
    named = dict(model.params())
    for n, p in named.items():
        p.requires_grad_(n in trainable)
    pg = []
    for lr, names in groups:  # Trainer.create_optimizer: no decay on biases (and LayerNorm)
        dec = [named[n] for n in names if "bias" not in n]
        nodec = [named[n] for n in names if "bias" in n]
        pg += [{"params": dec, "lr": lr, "weight_decay": opt["weight_decay"]},
               {"params": nodec, "lr": lr, "weight_decay": 0.0}]
    pg = [g for g in pg if g["params"]]
    o = torch.optim.AdamW(pg, betas=(0.9, 0.999), eps=1e-8)
    W = math.ceil(opt["warmup_ratio"] * STEPS)  # TrainingArguments.get_warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(o, lambda k: hf_factor(k, STEPS, W))
    params = [named[n] for n in sorted(trainable)]
    losses, grad0 = [], None
    for step in range(STEPS):
        if model.anneal:
            model.T = max(50.0 - 0.05 * step, 1.0)  # BertFusion: T -= T0/1000 per forward
        o.zero_grad()
        loss = model.loss(*data)
        loss.backward()
        if step == 0:
            grad0 = {n: named[n].grad.detach().clone() for n in trainable}
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        o.step()
        sched.step()
        losses.append(loss.item())
    return losses, grad0


# ---- cases --------------------------------------------------------------------------------------


def heads_for(data, H):
    if data == "cls":
        return {"t": (new_head(H, 3), False)}, ["t"] * 6, [CLS_LABELS.index(y) for y in CLS_Y]
    if data == "reg":
        return {"t": (new_head(H, 1), True)}, ["t"] * 6, REG_Y
    return ({"a": (new_head(H, 2), False), "b": (new_head(H, 1), True)}, [t for t, _ in MULTI],
            [y for _, y in MULTI])


def sites(cfg, arch):
    return [(l, s) for l in range(cfg["num_hidden_layers"]) for s in (0, 1)
            if s == 1 or arch == "houlsby"]


def write_adapter_file(path, name, arch, r, act, ads, cfg, fp):
    """An af adapter file for adapters ads {(l, s): Adapter} (no head: fusion ignores them)."""
    t = {}
    for (l, s), ad in sorted(ads.items()):
        pre = "bert.encoder.layer.%d.%s.adapters.%s." % (l, SITE_PATH[s], name)
        t.update({pre + n: p.detach().to(torch.float32) for n, p in ad.named_parameters()})
    H = cfg["hidden_size"]
    meta = {"format": "af-adapter/1", "name": name,
            "config": json.dumps({"arch": arch, "reduction_factor": H / r, "bottleneck": r,
                                  "non_linearity": act, "hidden_size": H,
                                  "num_layers": cfg["num_hidden_layers"]}),
            "heads": "{}", "base": json.dumps({"fingerprint": fp}),
            "created_by": "scripts/gen-train-fixtures.py"}
    stpy.save(path, t, meta)


# Frozen adapters to fuse: name -> (arch, bottleneck, activation). Mixed sizes and activations
# exercise the stacked down projection.
FUSE_SETS = {
    "pfeiffer": [("srca", "pfeiffer", 4, "relu"), ("srcb", "pfeiffer", 2, "relu"),
                 ("srcc", "pfeiffer", 3, "gelu")],
    "houlsby": [("hba", "houlsby", 4, "swish"), ("hbb", "houlsby", 2, "swish")],
}


def make_adapter_files(cfg, fp):
    """Writes adapters/NAME.safetensors for every FUSE_SETS entry; returns {name: {(l,s): Adapter}}."""
    os.makedirs(os.path.join(OUT, "adapters"), exist_ok=True)
    out = {}
    for entries in FUSE_SETS.values():
        for name, arch, r, act in entries:
            ads = {ls: new_adapter(cfg["hidden_size"], r, act) for ls in sites(cfg, arch)}
            write_adapter_file(os.path.join(OUT, "adapters", name + ".safetensors"), name, arch, r, act,
                               ads, cfg, fp)
            out[name] = ads
    return out


def run_case(name, cfg, P, case, adapter_files=None):
    """case: kind adapter|fusion and its options; writes NAME.safetensors."""
    H = cfg["hidden_size"]
    heads, tasks, gold = heads_for(case["data"], H)
    opt = {"lr": case.get("lr", 1e-2), "adapter_lr": case.get("adapter_lr", 1e-4),
           "weight_decay": case.get("weight_decay", 0.0), "warmup_ratio": case.get("warmup_ratio", 0.0)}
    if case["kind"] == "adapter":
        arch, r, act = case["arch"], case["bottleneck"], case["act"]
        adapters = {ls: [("new", new_adapter(H, r, act))] for ls in sites(cfg, arch)}
        model = Model(cfg, P, arch, adapters, {}, heads)
    else:
        entries = FUSE_SETS[case["set"]]
        arch = entries[0][1]
        # a copy: --unfreeze-adapters trains them, and the next case starts from the files again
        adapters = {ls: [(n, copy.deepcopy(adapter_files[n][ls])) for n, _, _, _ in entries]
                    for ls in sites(cfg, arch)}
        fusions = {ls: new_fusion(case["method"], H, len(entries), case.get("heads", 4),
                                  case.get("gate") == "softmax", case.get("temperature", 1.0))
                   for ls in sites(cfg, arch)}
        model = Model(cfg, P, arch, adapters, fusions, heads)
        model.fusion_key = ",".join(n for n, _, _, _ in entries)
        model.T = case.get("temperature", 1.0)
    model.anneal = case.get("anneal", False)
    names = [n for n, _ in model.params()]
    # what the output file holds: frozen adapters stay in their own files
    saved = [n for n in names if case["kind"] == "adapter" or case.get("unfreeze") or ".adapters." not in n]
    init = {n: p.detach().clone() for n, p in model.params() if n in saved}
    is_adapter = lambda n: ".adapters." in n  # noqa: E731
    fixed = case.get("fixed_weights", False)
    if case["kind"] == "adapter":
        trainable = set(names)
        groups = [(opt["lr"], names)]
    else:
        g0 = [n for n in names if not is_adapter(n) and not (fixed and n.endswith(".weights"))]
        trainable = set(g0)
        groups = [(opt["lr"], g0)]
        if case.get("unfreeze"):
            g1 = [n for n in names if is_adapter(n)]
            trainable |= set(g1)
            groups.append((opt["adapter_lr"], g1))
    ids, tt, mask = batch()
    losses, grad0 = train(model, trainable, groups, opt, (ids, tt, mask, tasks, gold))
    t = {}
    t.update({n: v.to(torch.float32) for n, v in init.items()})
    t.update({"grad." + n: v.to(torch.float32) for n, v in sorted(grad0.items())})
    t.update({"final." + n: p.detach().to(torch.float32) for n, p in model.params() if n in saved})
    t["loss"] = torch.tensor(losses, dtype=torch.float32)
    meta = dict(case)
    meta.update(opt)
    meta["epochs"] = STEPS
    meta["trainable"] = len(trainable)
    if case["kind"] == "fusion":
        meta["adapters"] = [n for n, _, _, _ in entries]
    stpy.save(os.path.join(OUT, name + ".safetensors"), t,
              {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    print("%-28s loss %s  trainable %d" % (name, " ".join("%.5f" % x for x in losses), len(trainable)))


CASES = [
    ("pfeiffer", dict(kind="adapter", data="cls", arch="pfeiffer", bottleneck=4, act="relu")),
    ("houlsby", dict(kind="adapter", data="cls", arch="houlsby", bottleneck=4, act="swish",
                     weight_decay=0.1)),
    ("regression", dict(kind="adapter", data="reg", arch="pfeiffer", bottleneck=2, act="tanh",
                        warmup_ratio=0.3)),
    ("multitask", dict(kind="adapter", data="multi", arch="pfeiffer", bottleneck=4, act="gelu")),
    ("fuse_attention", dict(kind="fusion", data="cls", set="pfeiffer", method="attention")),
    ("fuse_attention_anneal", dict(kind="fusion", data="cls", set="pfeiffer", method="attention",
                                   anneal=True)),
    ("fuse_attention_unfreeze", dict(kind="fusion", data="cls", set="pfeiffer", method="attention",
                                     unfreeze=True, adapter_lr=3e-3)),
    ("fuse_static", dict(kind="fusion", data="cls", set="pfeiffer", method="static")),
    ("fuse_multihead", dict(kind="fusion", data="cls", set="pfeiffer", method="multihead", heads=2,
                            temperature=1.5)),
    ("fuse_weighted", dict(kind="fusion", data="reg", set="pfeiffer", method="weighted")),
    ("fuse_weighted_fixed", dict(kind="fusion", data="cls", set="pfeiffer", method="weighted",
                                 fixed_weights=True)),
    ("fuse_gating", dict(kind="fusion", data="cls", set="pfeiffer", method="gating")),
    ("fuse_gating_softmax", dict(kind="fusion", data="multi", set="pfeiffer", method="gating",
                                 gate="softmax")),
    ("fuse_houlsby", dict(kind="fusion", data="cls", set="houlsby", method="attention")),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240611)
    cfg, P, fp = make_base()
    write_data()
    adapter_files = make_adapter_files(cfg, fp)
    for name, case in CASES:
        run_case(name, cfg, P, case, adapter_files)


if __name__ == "__main__":
    main()
