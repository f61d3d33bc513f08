#!/usr/bin/python3
"""check-arch-peer.py HUB_SRC: the RoBERTa and DistilBERT fixtures (scripts/gen-arch-fixtures.py)
against the real AdapterHub (adapter-transformers 3.2.1 = transformers 4.26.1 fork, unmodified,
extracted by ../shared/peer/setup_adapterhub.sh into HUB_SRC, e.g. build/hub-src), in float64:

  1. each random checkpoint (tests/fixtures/arch/A/{f32,f16|bf16}) loads into RobertaModel /
     DistilBertModel with nothing missing, and its last hidden states equal the fixture's;
  2. af's adapter and fusion files (A/infer: Pfeiffer a, b; attention fusion ab) load by their
     tensor names into RobertaAdapterModel / DistilBertAdapterModel with add_adapter,
     add_adapter_fusion and add_classification_head, every name found, and predict the
     fixture's probabilities (which tests/cli/t0650-arch.sh holds af-infer to, at 1e-4);
  3. the MLM fixtures (A/mlm) load into RobertaForMaskedLM / DistilBertForMaskedLM and give the
     fixture's loss and every parameter's gradient (which tests/parity/mlm.c holds af to);
  4. the training cases (A/train: pfeiffer, houlsby, fuse_attention, fuse_houlsby): from the
     fixture's initial weights, 3 AdamW steps as HF's Trainer takes them (linear decay, clipping
     at 1.0, no decay on biases) land on the fixture's final weights (which
     tests/parity/train.c holds af to), and the losses agree.
Prints one line per check and the worst differences; exits 1 on any over 1e-6 (2e-5 for the
trained weights, where Adam amplifies rounding of tiny gradients).
Run: AT_MIRROR=... HH_MIRROR=... ../shared/peer/setup_adapterhub.sh build/hub-src &&
     /usr/bin/python3 scripts/check-arch-peer.py build/hub-src"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/hub-src"))
import stpy  # noqa: E402
from transformers import (DistilBertConfig, DistilBertForMaskedLM, DistilBertModel,  # noqa: E402
                          RobertaConfig, RobertaForMaskedLM, RobertaModel)
from transformers.adapters import (DistilBertAdapterModel, Fuse, HoulsbyConfig,  # noqa: E402
                                   PfeifferConfig, RobertaAdapterModel)
from transformers.adapters.configuration import DynamicAdapterFusionConfig  # noqa: E402

torch.set_default_dtype(torch.float64)
FX = os.path.join(HERE, "..", "tests", "fixtures", "arch")
BAD = []


def report(what, d, tol):
    print("%-62s max abs diff %.2e %s" % (what, d, "ok" if d <= tol else "FAIL"))
    if not d <= tol:
        BAD.append(what)


def tensors(path):
    t, meta = stpy.load(path)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) if v.dtype != np.int64 else v
            for k, v in t.items()}, meta


def classes(arch):
    if arch == "roberta":
        return RobertaConfig, RobertaModel, RobertaAdapterModel, "roberta"
    return DistilBertConfig, DistilBertModel, DistilBertAdapterModel, "distilbert"


def load_into(model, t, prefix_strip=None, what=""):
    sd = model.state_dict()
    new = {}
    for k, v in t.items():
        kk = k[len(prefix_strip):] if prefix_strip and k.startswith(prefix_strip) else k
        if kk in sd and not isinstance(v, np.ndarray):
            new[kk] = v
    # RobertaModel makes a pooler that roberta-base's files (and these) do not have
    missing = [k for k in sd if k not in new and not k.endswith("position_ids")
               and not k.startswith("pooler.")]
    return new, missing


def check_encoder(arch, kind):
    Cfg, Model, _, prefix = classes(arch)
    d = os.path.join(FX, arch, kind)
    cfg = Cfg.from_json_file(os.path.join(d, "config.json"))
    m = Model(cfg).eval()
    t, _ = tensors(os.path.join(d, "model.safetensors"))
    new, missing = load_into(m, t, prefix + ".")
    m.load_state_dict(new, strict=False)
    if missing:
        report("%s/%s: every parameter in the file (missing %s)" % (arch, kind, missing[:3]), 1, 0)
    exp, _ = stpy.load(os.path.join(d, "expected.safetensors"))
    ids = torch.from_numpy(exp["input_ids"].astype(np.int64))
    mask = torch.from_numpy(exp["attention_mask"].astype(np.int64))
    with torch.no_grad():
        out = m(input_ids=ids, attention_mask=mask).last_hidden_state
    L = cfg.num_hidden_layers
    want = torch.from_numpy(exp["hidden.%d" % L].astype(np.float64))
    report("%s/%s: %s last hidden states" % (arch, kind, type(m).__name__),
           (out - want).abs().max().item(), 1e-5)


def adapter_model(arch, base_dir):
    Cfg, _, AM, prefix = classes(arch)
    cfg = Cfg.from_json_file(os.path.join(base_dir, "config.json"))
    m = AM(cfg)
    t, _ = tensors(os.path.join(base_dir, "model.safetensors"))
    sd = m.state_dict()  # a checkpoint without the model prefix (the half-precision ones)
    t = {k if k in sd else prefix + "." + k: v for k, v in t.items()}
    new, _ = load_into(m, t)
    m.load_state_dict(new, strict=False)
    absent = [k for k in sd if k.startswith(prefix + ".") and k not in new
              and not k.endswith("position_ids") and ".pooler." not in k and "adapter" not in k]
    if absent:
        report("%s: every base tensor loaded (not %s)" % (base_dir, absent[:2]), 1, 0)
    return m, cfg


def add_af_adapter(m, path, H):
    t, meta = tensors(path)
    c = json.loads(meta["config"])
    name = meta["name"]
    Conf = PfeifferConfig if c["arch"] == "pfeiffer" else HoulsbyConfig
    m.add_adapter(name, config=Conf(reduction_factor=H / c["bottleneck"],
                                    non_linearity=c["non_linearity"]))
    return name, t, json.loads(meta["heads"])


def add_head(m, task, labels):
    m.add_classification_head(task, num_labels=len(labels) if isinstance(labels, list) else 1,
                              layers=2, activation_function="tanh")


def load_named(m, t, what):
    sd = m.state_dict()
    names = [k for k in t if not isinstance(t[k], np.ndarray)]
    absent = [k for k in names if k not in sd]
    if absent:
        report("%s: AdapterHub has every tensor name (not %s)" % (what, absent[:2]), 1, 0)
    m.load_state_dict({k: t[k] for k in names if k in sd}, strict=False)
    return names


def check_infer(arch, kind="f32"):
    d = os.path.join(FX, arch, "infer" if kind == "f32" else "infer-" + kind)
    lines = [json.loads(x) for x in open(os.path.join(d, "in.jsonl"))]
    for case in ("a", "b", "ab"):
        m, cfg = adapter_model(arch, os.path.join(FX, arch, kind))
        H = cfg.hidden_size
        names = [case] if len(case) == 1 else list(case)
        ts, heads = {}, None
        for n in names:
            name, t, hd = add_af_adapter(m, os.path.join(d, n + ".safetensors"), H)
            # fused, the adapters' own heads are not used (nor loaded)
            ts.update({k: v for k, v in t.items() if len(names) == 1 or not k.startswith("heads.")})
            heads = hd
        if len(names) > 1:
            ft, fmeta = tensors(os.path.join(d, case + ".safetensors"))
            fc = json.loads(fmeta["config"])
            m.add_adapter_fusion(Fuse(*names), DynamicAdapterFusionConfig())
            heads = json.loads(fmeta["heads"])
            ts.update(ft)
        task, labels = next(iter(heads.items()))
        add_head(m, task, labels)
        n = len(load_named(m, ts, "%s/%s" % (arch, case)))
        if len(names) > 1:
            m.set_active_adapters(Fuse(*names))
        else:
            m.set_active_adapters(names[0])
        m.active_head = task
        m.eval()
        want = [list(map(float, x.split("|")[0].split())) for x in open(os.path.join(d, case + ".expected"))]
        worst = 0.0
        for ln, w in zip(lines, want):
            ids = torch.tensor([ln["input_ids"]])
            mask = torch.tensor([ln.get("attention_mask", [1] * len(ln["input_ids"]))])
            for mod in m.modules():  # af's fixed temperature: BertFusion lowers its T by T0/1000
                if type(mod).__name__ == "BertFusion" and len(names) > 1:  # every forward
                    mod.T = fc["temperature"]
            with torch.no_grad():
                logits = m(input_ids=ids, attention_mask=mask).logits[0]
            p = torch.softmax(logits, -1) if isinstance(labels, list) else logits
            worst = max(worst, (p - torch.tensor(w)).abs().max().item())
        report("%s/%s %s: %d tensors by name, %s predictions" % (arch, os.path.basename(d), case, n,
                                                                   type(m).__name__),
               worst, 1e-6)


def check_train(arch):
    d = os.path.join(FX, arch, "train")
    rows = [json.loads(x) for x in open(os.path.join(d, "cls.jsonl"))]
    labels = ["neg", "neu", "pos"]
    B, S = len(rows), max(len(r["input_ids"]) for r in rows)
    pad = 1 if arch == "roberta" else 0
    ids = torch.full((B, S), pad, dtype=torch.long)
    mask = torch.zeros((B, S), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r["input_ids"])] = torch.tensor(r["input_ids"])
        mask[i, :len(r["input_ids"])] = 1
    gold = torch.tensor([labels.index(r["label"]) for r in rows])
    for case in ("pfeiffer", "houlsby", "fuse_attention", "fuse_houlsby"):
        t, meta = tensors(os.path.join(d, case + ".safetensors"))
        m, cfg = adapter_model(arch, os.path.join(d, "base"))
        H = cfg.hidden_size
        if meta["kind"] == "adapter":
            Conf = PfeifferConfig if meta["arch"] == "pfeiffer" else HoulsbyConfig
            m.add_adapter("new", config=Conf(reduction_factor=H / int(meta["bottleneck"]),
                                             non_linearity=meta["act"]))
            names = ["new"]
        else:
            names = json.loads(meta["adapters"])
            for n in names:
                _, at, _ = add_af_adapter(m, os.path.join(d, "adapters", n + ".safetensors"), H)
                load_named(m, at, "%s/%s adapters" % (arch, case))
            m.add_adapter_fusion(Fuse(*names), DynamicAdapterFusionConfig())
        add_head(m, "t", labels)
        init = {k: v for k, v in t.items() if not k.startswith(("grad.", "final.")) and k != "loss"}
        load_named(m, init, "%s/%s" % (arch, case))
        m.set_active_adapters(names[0] if len(names) == 1 else Fuse(*names))
        m.active_head = "t"
        m.train()
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        named = dict(m.named_parameters())
        trainable = [k for k in init if k in named]
        for k, p in named.items():
            p.requires_grad_(k in trainable)
        lr, wd = float(meta["lr"]), float(meta["weight_decay"])
        groups = [{"params": [named[k] for k in trainable if "bias" not in k], "weight_decay": wd},
                  {"params": [named[k] for k in trainable if "bias" in k], "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, (3 - k) / 3))
        losses = []
        for step in range(3):
            opt.zero_grad()
            logits = m(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits, gold)
            for mod in m.modules():  # the fusion regulariser, added before backward as af does
                if type(mod).__name__ == "BertFusion" and mod.config["value"]:
                    loss = loss + 0.01 * (torch.eye(H) - mod.value.weight).pow(2).sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([named[k] for k in sorted(trainable)], 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        want = t["loss"].numpy()
        report("%s/train %s: losses of 3 steps" % (arch, case), float(np.abs(np.array(losses) - want).max()),
               1e-6)
        worst = max((named[k].detach() - t["final." + k]).abs().max().item() for k in trainable)
        report("%s/train %s: %d tensors after 3 AdamW steps" % (arch, case, len(trainable)), worst, 2e-5)


def check_mlm(arch):
    """A/mlm: the tiny checkpoint loads into RobertaForMaskedLM / DistilBertForMaskedLM (the
    decoder weight tied, nothing else missing) and its MLM loss on the fixture's batch is the
    fixture's (which tests/parity/mlm.c holds af to)."""
    d = os.path.join(FX, arch, "mlm")
    Cfg, _, _, _ = classes(arch)
    cfg = Cfg.from_json_file(os.path.join(d, "model", "config.json"))
    m = (RobertaForMaskedLM if arch == "roberta" else DistilBertForMaskedLM)(cfg).eval()
    t, _ = tensors(os.path.join(d, "model", "model.safetensors"))
    new, missing = load_into(m, t)
    m.load_state_dict(new, strict=False)
    m.tie_weights()
    missing = [k for k in missing  # tied: decoder.bias is lm_head.bias in RobertaLMHead
               if not k.endswith(("decoder.weight", "decoder.bias", "projector.weight"))]
    if missing:
        report("%s/mlm: every parameter in the file (missing %s)" % (arch, missing[:3]), 1, 0)
    exp, _ = stpy.load(os.path.join(d, "expected.safetensors"))
    ids = torch.from_numpy(exp["input_ids"].astype(np.int64))
    mask = torch.from_numpy(exp["attention_mask"].astype(np.int64))
    labels = torch.from_numpy(exp["labels"].astype(np.int64))
    out = m(input_ids=ids, attention_mask=mask, labels=labels)
    loss = out.loss.item()
    report("%s/mlm: %s loss" % (arch, type(m).__name__), abs(loss - float(exp["loss"][0])), 1e-6)
    # and every parameter's gradient, the tied word embeddings' included (encoder + decoder)
    out.loss.backward()
    worst, n, absent = 0.0, 0, []
    for k, p in m.named_parameters():
        if ("grad." + k) not in exp:
            absent.append(k)
            continue
        want = torch.from_numpy(np.asarray(exp["grad." + k], dtype=np.float64))
        worst = max(worst, (p.grad - want).abs().max().item() / max(1e-3, want.abs().max().item()))
        n += 1
    grads = sum(k.startswith("grad.") for k in exp)
    report("%s/mlm: %s gradients of %d parameters (fixture %d%s), relative" %
           (arch, type(m).__name__, n, grads, "; absent %s" % absent[:2] if absent else ""),
           worst if n == grads and not absent else 1, 1e-5)


def main():
    for arch, half in (("roberta", "f16"), ("distilbert", "bf16")):
        check_encoder(arch, "f32")
        check_encoder(arch, half)
        check_infer(arch)
        check_infer(arch, half)
        check_train(arch)
        check_mlm(arch)
    print("%d failed" % len(BAD))
    return 1 if BAD else 0


if __name__ == "__main__":
    sys.exit(main())
