#!/usr/bin/python3
"""gen-arch-fixtures.py: PyTorch references for RoBERTa and DistilBERT bases (tests/fixtures/arch/).

Run with Debian's python3 (torch 1.13); transformers is not needed. The references are written
from Hugging Face's modeling code (transformers 4.26: RobertaModel, DistilBertModel) and
AdapterHub's adapter-transformers 3.2.1 (AdapterLayer placement in RobertaLayer and DistilBERT's
TransformerBlock), read, not imported. In float64 on float32 (or F16/BF16-rounded) weights, as
gen-fixtures.py does.

The reference model keeps BERT's internal parameter names (gen-fixtures.py's forward, whose layer
all three share); only the embeddings differ, and the names are mapped to each architecture's
state-dict names when files are written (rename()). That map is this script's own statement of
the HF/AdapterHub names, independent of lib/arch.c:
  RoBERTa     "roberta." prefix, BERT's module tree; positions from pad_token_id + 1 over the
              non-pad ids (create_position_ids_from_input_ids), one token type, eps 1e-5.
  DistilBERT  "distilbert." prefix, transformer.layer.N.attention.{q,k,v,out}_lin, sa_layer_norm,
              ffn.lin1/lin2, output_layer_norm; no token types; config keys dim/n_layers/n_heads/
              hidden_dim/activation/dropout/attention_dropout; adapters under
              attention_adapters/output_adapters (AdapterLayer "mh_adapter"/"output_adapter").

Writes, per architecture A in (roberta, distilbert):
  A/f32/    prefixed names, F32, plus tensors a loader must skip; expected.safetensors (inputs,
            hidden states, d loss / d hidden) and grad/ (d loss / d every weight, HF layout)
  A/f16/    RoBERTa: no prefix, F16.   A/bf16/  DistilBERT: no prefix, BF16.
  A/infer/  gen-infer-fixtures.py's adapter and fusion files, input lines and expected
            predictions (adapters a, b, c, d; fusions ab (attention), cd (gating)) on A/f32;
            A/infer-f16 (RoBERTa), A/infer-bf16 (DistilBERT): the same on the half-precision base
  A/mlm/     gen-mlm-fixtures.py's masked batch on a tiny *ForMaskedLM of A: loss, argmax hits,
            every parameter's gradient (tests/parity/mlm.c)
  A/train/  gen-train-fixtures.py's cases pfeiffer, houlsby, fuse_attention, fuse_houlsby on a
            tiny base of A (its Model, Trainer loop and AdapterHub modules, with A's embeddings
            and names)
Usage: /usr/bin/python3 scripts/gen-arch-fixtures.py"""
import importlib.util
import json
import math
import os
import re
import sys

import numpy as np
import torch
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


enc = _import("gen_fixtures", "gen-fixtures.py")  # float64 default dtype
tr = _import("gen_train_fixtures", "gen-train-fixtures.py")

OUT = os.path.join(HERE, "..", "tests", "fixtures", "arch")

# ---- names --------------------------------------------------------------------------------------

DISTIL_LAYER = [("attention.self.query", "attention.q_lin"), ("attention.self.key", "attention.k_lin"),
                ("attention.self.value", "attention.v_lin"), ("attention.output.dense", "attention.out_lin"),
                ("attention.output.LayerNorm", "sa_layer_norm"), ("intermediate.dense", "ffn.lin1"),
                ("output.dense", "ffn.lin2"), ("output.LayerNorm", "output_layer_norm")]
DISTIL_SITE = {"attention.output": "attention_adapters", "output": "output_adapters"}


def rename(arch, name):
    """BERT's name (with or without "bert.", or inside "grad."/"final." keys) -> arch's."""
    if arch == "roberta":
        return re.sub(r"(^|\.)bert\.", r"\1roberta.", name)
    name = re.sub(r"(^|\.)bert\.", r"\1distilbert.", name)

    def layer(m):
        rest = m.group(2)
        for a, b in DISTIL_LAYER:
            if rest.startswith(a + "."):
                return "transformer.layer.%s.%s" % (m.group(1), b + rest[len(a):])
        for a, b in DISTIL_SITE.items():  # adapters and fusion: AdapterLayer under the block
            if rest.startswith(a + ".adapter"):
                return "transformer.layer.%s.%s" % (m.group(1), b + rest[len(a):])
        raise ValueError(name)
    return re.sub(r"encoder\.layer\.(\d+)\.(.*)$", layer, name)


def hf_config(arch, c):
    """gen-fixtures.py's BertConfig dict -> the architecture's config.json."""
    if arch == "roberta":
        d = dict(c)
        d.update(architectures=["RobertaModel"], model_type="roberta")
        return d
    return {"architectures": ["DistilBertModel"], "model_type": "distilbert",
            "vocab_size": c["vocab_size"], "dim": c["hidden_size"], "n_layers": c["num_hidden_layers"],
            "n_heads": c["num_attention_heads"], "hidden_dim": c["intermediate_size"],
            "activation": c["hidden_act"], "dropout": c["hidden_dropout_prob"],
            "attention_dropout": c["attention_probs_dropout_prob"], "seq_classif_dropout": 0.2,
            "qa_dropout": 0.1, "max_position_embeddings": c["max_position_embeddings"],
            "sinusoidal_pos_embds": False, "initializer_range": 0.02, "pad_token_id": c["pad_token_id"]}


def base_config(arch, layers, act, hidden=32, heads=4, ffn=64):
    if arch == "roberta":
        c = enc.config(layers, act, 1e-5)
        c.update(type_vocab_size=1, pad_token_id=1, max_position_embeddings=20)
    else:  # DistilBERT's LayerNorms are nn.LayerNorm(dim, eps=1e-12); no token types
        c = enc.config(layers, act, 1e-12)
        c.update(type_vocab_size=1)  # a dummy row the reference never reads, dropped on writing
    c.update(hidden_size=hidden, num_attention_heads=heads, intermediate_size=ffn)
    return c


def drop_types(arch, P):
    if arch == "distilbert":
        P.pop("embeddings.token_type_embeddings.weight", None)
    return P


# ---- the forward ----------------------------------------------------------------------------------

def positions(arch, ids, pad):
    """RobertaEmbeddings: create_position_ids_from_input_ids (a running count of non-pad ids plus
    padding_idx; pads get padding_idx). Else 0..S-1."""
    if arch == "roberta":
        m = ids.ne(pad).long()
        return torch.cumsum(m, dim=1) * m + pad
    return torch.arange(ids.shape[1])[None].expand_as(ids)


def make_forward(arch):
    """gen-fixtures.py's forward with arch's embeddings: its layers are the same module tree
    (RobertaLayer is BertLayer; DistilBERT's TransformerBlock computes the same function: q scaled
    before the product instead of the scores after, masked_fill(finfo.min) instead of adding it,
    no dropout after out_lin, which eval mode does not see)."""
    def forward(c, P, ids, tt, mask, hooks=()):
        pad = c["pad_token_id"]
        H = c["hidden_size"]
        e = F.embedding(ids, P["embeddings.word_embeddings.weight"], padding_idx=pad)
        if arch == "roberta":  # inputs_embeds + token_type_embeddings + position_embeddings
            e = e + F.embedding(tt, P["embeddings.token_type_embeddings.weight"])
        # RoBERTa's position table has padding_idx too: no gradient reaches row pad_token_id
        e = e + F.embedding(positions(arch, ids, pad), P["embeddings.position_embeddings.weight"],
                            padding_idx=pad if arch == "roberta" else None)
        x = F.layer_norm(e, (H,), P["embeddings.LayerNorm.weight"], P["embeddings.LayerNorm.bias"],
                         c["layer_norm_eps"])
        return layers_forward(c, P, mask, x, hooks)
    return forward


def layers_forward(c, P, mask, x, hooks):
    """gen-fixtures.py's layer loop from the embeddings x (BertLayer: HF's extended mask, the
    sites with enc.hook_site where hooked)."""
    H, nh, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    d = H // nh
    B, S = x.shape[0], x.shape[1]
    act = enc.act_fn(c["hidden_act"])
    hidden, sites = [x], {}
    mask_add = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min

    def site(l, s, h, r, name):
        w, b = P[name + ".LayerNorm.weight"], P[name + ".LayerNorm.bias"]
        out = enc.hook_site(h, r, w, b, eps) if (l, s) in hooks else F.layer_norm(h + r, (H,), w, b, eps)
        sites[(l, s)] = (h, r, out)
        return out

    for l in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % l

        def lin(t, n):
            return F.linear(t, P[p + n + ".weight"], P[p + n + ".bias"])

        def split(t):
            return t.view(B, S, nh, d).permute(0, 2, 1, 3)

        q, k, v = (split(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask_add
        ctx = torch.matmul(torch.softmax(s, dim=-1), v).permute(0, 2, 1, 3).reshape(B, S, H)
        h1 = lin(ctx, "attention.output.dense")
        a = site(l, 0, h1, x, p + "attention.output")
        h2 = lin(act(lin(a, "intermediate.dense")), "output.dense")
        x = site(l, 1, h2, a, p + "output")
        hidden.append(x)
    return hidden, sites


# ---- encoder fixtures -------------------------------------------------------------------------

def enc_inputs(arch):
    """Two sequences right-padded with pad_token_id; RoBERTa's first one holds the pad id
    mid-sequence (attended to: mask 1), which shifts the positions after it."""
    pad = 1 if arch == "roberta" else 0
    ids = [[0, 17, 33, 5, pad, 61, 9, 2], [0, 44, 12, 2, pad, pad, pad, pad]]
    if arch == "distilbert":
        ids = [[2, 17, 33, 5, 61, 9, 30, 3], [2, 44, 12, 3, 0, 0, 0, 0]]
    mask = [[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]]
    tt = [[0] * 8, [0] * 8]
    return torch.tensor(ids), torch.tensor(tt), torch.tensor(mask)


def run(arch, c, P32, grads=True):
    P = {k: v.to(torch.float64).requires_grad_(True) for k, v in P32.items()}
    ids, tt, mask = enc_inputs(arch)
    g = torch.Generator().manual_seed(7)
    R = torch.randn((ids.shape[0], ids.shape[1], c["hidden_size"]), generator=g).to(torch.float32)
    hidden, _ = make_forward(arch)(c, P, ids, tt, mask)
    for h in hidden:
        h.retain_grad()
    loss = (hidden[-1] * R.to(torch.float64)).sum()
    loss.backward()
    exp = {"input_ids": ids.to(torch.int32).numpy(), "token_type_ids": tt.to(torch.int32).numpy(),
           "attention_mask": mask.to(torch.int32).numpy(), "loss_weight": R.numpy(),
           "loss": np.array([loss.item()], dtype=np.float32)}
    for i, h in enumerate(hidden):
        exp["hidden.%d" % i] = h.detach().to(torch.float32).numpy()
        exp["dhidden.%d" % i] = h.grad.to(torch.float32).numpy()
    gr = {k: v.grad.to(torch.float32) for k, v in P.items()} if grads else None
    return exp, gr


def write_config(d, arch, c):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(arch, c), f, indent=2)
        f.write("\n")


def encoder_fixtures(arch):
    pre = arch + "."
    # f32: prefixed names, buffers and heads the loader must skip
    c = base_config(arch, 2, "gelu")
    P = drop_types(arch, enc.random_params(c, 21 if arch == "roberta" else 31))
    d = os.path.join(OUT, arch, "f32")
    write_config(d, arch, c)
    t = {rename(arch, "bert." + k): v for k, v in P.items()}
    t[pre + "embeddings.position_ids"] = np.arange(c["max_position_embeddings"], dtype=np.int64)[None]
    if arch == "roberta":
        t["lm_head.bias"] = torch.zeros(c["vocab_size"], dtype=torch.float32)
    else:
        t["vocab_projector.bias"] = torch.zeros(c["vocab_size"], dtype=torch.float32)
    stpy.save(os.path.join(d, "model.safetensors"), t, {"format": "pt"})
    exp, grads = run(arch, c, P)
    stpy.save(os.path.join(d, "expected.safetensors"), exp)
    write_config(os.path.join(d, "grad"), arch, c)
    stpy.save(os.path.join(d, "grad", "model.safetensors"),
              {rename(arch, "bert." + k): v for k, v in grads.items()})

    c, Pr, kind = half_base(arch, write=True)
    exp, _ = run(arch, c, Pr, grads=False)
    stpy.save(os.path.join(OUT, arch, kind, "expected.safetensors"), exp)


def half_base(arch, write=False):
    """A half-precision checkpoint without the prefix: F16 for RoBERTa, BF16 for DistilBERT.
    Returns its config, its weights as rounded, and the kind."""
    c = base_config(arch, 3, "gelu_new" if arch == "roberta" else "relu")
    P = drop_types(arch, enc.random_params(c, 22 if arch == "roberta" else 32))
    kind = "f16" if arch == "roberta" else "bf16"
    d = os.path.join(OUT, arch, kind)
    if write:
        write_config(d, arch, c)
    if kind == "f16":
        Pr = {k: torch.from_numpy(v.numpy().astype(np.float16).astype(np.float32)) for k, v in P.items()}
        if write:
            stpy.save(os.path.join(d, "model.safetensors"),
                      {rename(arch, k): v.numpy().astype(np.float16) for k, v in P.items()})
    else:
        entries, Pr = [], {}
        for k, v in P.items():
            u = enc.bf16_bytes(v.numpy())
            entries.append((rename(arch, k), "BF16", list(v.shape), u.tobytes()))
            Pr[k] = torch.from_numpy(enc.from_bf16(u).reshape(v.shape))
        if write:
            stpy.save_raw(os.path.join(d, "model.safetensors"), entries)
    return c, Pr, kind


# ---- training fixtures ------------------------------------------------------------------------

TRAIN_CASES = ["pfeiffer", "houlsby", "fuse_attention", "fuse_houlsby"]
# The training cases' seed, one per architecture, chosen so that every first gradient that is not
# zero by construction (fusion key biases) is at least 1e-7 in size. AdamW's first step moves an
# entry by lr·g/(|g| + 1e-8): for g near 1e-8 that step is set by g's last float32 bits, so a
# float32 run cannot match the float64 reference there whatever its correctness. With the shared
# seed 20240611 DistilBERT's houlsby case had heads.t.1.weight[62] = 6.13e-9 (a finite difference
# in float64 agrees), af's float32 gradient was 6.45e-9 (rounding: the tensor's gradients are
# ~1e-2), and 3 steps at lr 1e-2 ended 1.2e-4 apart; with these seeds the smallest first
# gradients are 1.9e-7 (RoBERTa) and 4.0e-7 (DistilBERT), and tests/parity/train.c compares every
# entry to 2e-5 and checks this bound.
TRAIN_SEED = {"roberta": 20240693, "distilbert": 20240639}


class RenamingStpy:
    """stpy for gen-train-fixtures.py: names mapped to arch's, and the base's model_type recorded
    in the adapter files' metadata (af refuses a file trained on another architecture)."""

    def __init__(self, arch):
        self.arch = arch

    def save(self, path, tensors, metadata=None):
        t = {rename(self.arch, k): v for k, v in tensors.items()}
        if metadata and "base" in metadata:
            b = json.loads(metadata["base"])
            b.setdefault("config", {})["model_type"] = self.arch
            metadata = dict(metadata, base=json.dumps(b))
        stpy.save(path, t, metadata)


def train_fixtures(arch):
    tr.OUT = os.path.join(OUT, arch, "train")
    os.makedirs(tr.OUT, exist_ok=True)
    tr.stpy = RenamingStpy(arch)

    class Enc:  # what tr.Model.loss calls: enc.hook_site = ...; enc.forward(...)
        pass
    shim = Enc()
    fwd = make_forward(arch)

    def forward(c, P, ids, tt, mask, hooks=()):
        enc.hook_site = shim.hook_site
        return fwd(c, P, ids, tt, mask, hooks)
    shim.forward = forward
    tr.enc = shim

    def make_base():
        c = base_config(arch, 2, "gelu", hidden=16, heads=2, ffn=32)
        P = drop_types(arch, enc.random_params(c, 11))
        d = os.path.join(tr.OUT, "base")
        write_config(d, arch, c)
        path = os.path.join(d, "model.safetensors")
        stpy.save(path, {rename(arch, "bert." + k): v for k, v in P.items()}, {"format": "pt"})
        return c, {k: v.to(torch.float64) for k, v in P.items()}, af_fingerprint.fingerprint(d)

    if arch == "roberta":  # <s> = 0, </s> = 2, pad = 1: ids as RobertaTokenizer makes them
        tr.IDS = [[0 if t == 2 else 2 if t == 3 else t for t in s] for s in tr.IDS]
        tr.TYPES = [[0] * len(s) for s in tr.IDS]  # one token type

        def batch():
            ids, tt, mask = orig_batch()
            ids[mask == 0] = 1
            return ids, tt, mask
        orig_batch = tr.batch
        tr.batch = batch
    torch.manual_seed(TRAIN_SEED[arch])
    c, P, fp = make_base()
    tr.write_data()
    files = tr.make_adapter_files(c, fp)
    for name, case in tr.CASES:
        if name in TRAIN_CASES:
            tr.run_case(name, c, P, case, files)


# ---- MLM fixtures -------------------------------------------------------------------------------

MLM_HEAD = {  # transform dense, its LayerNorm, the decoder's bias (weight tied to the embeddings)
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias"),
}


def mlm_fixture(arch):
    """gen-mlm-fixtures.py's case for arch's *ForMaskedLM: RobertaLMHead (dense, gelu whatever
    hidden_act says, layer_norm with the config's eps, tied decoder + bias) or DistilBERT's
    vocab_transform, activation, vocab_layer_norm (eps 1e-12), vocab_projector. Writes A/mlm/."""
    gm = _import("gen_mlm_fixtures_" + arch, "gen-mlm-fixtures.py")
    c = base_config(arch, 2, "gelu_new", hidden=16, heads=2, ffn=24)
    c.update(vocab_size=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    g = torch.Generator().manual_seed(4321)
    P32 = drop_types(arch, enc.random_params(c, 77))
    dense, ln, bias = MLM_HEAD[arch]
    H, V = c["hidden_size"], c["vocab_size"]
    P32[dense + ".weight"] = (0.3 * torch.randn((H, H), generator=g)).to(torch.float32)
    P32[dense + ".bias"] = (0.1 * torch.randn(H, generator=g)).to(torch.float32)
    P32[ln + ".weight"] = (1.0 + 0.2 * torch.randn(H, generator=g)).to(torch.float32)
    P32[ln + ".bias"] = (0.1 * torch.randn(H, generator=g)).to(torch.float32)
    P32[bias] = (0.1 * torch.randn(V, generator=g)).to(torch.float32)
    P = {k: v.to(torch.float64).requires_grad_(True) for k, v in P32.items()}
    pad = c["pad_token_id"]
    ids = torch.tensor([[t if t else pad for t in row] for row in gm.INPUT_IDS])
    if arch == "roberta":  # <s> 0, </s> 2, pad 1, <mask> 4 as in the BERT case's ids
        ids = torch.tensor([[{2: 0, 3: 2, 0: 1}.get(t, t) for t in row] for row in gm.INPUT_IDS])
    tt = torch.zeros_like(ids)
    mask, labels = torch.tensor(gm.MASK), torch.tensor(gm.LABELS)
    hidden, _ = make_forward(arch)(c, P, ids, tt, mask)
    x = hidden[-1]
    act = F.gelu if arch == "roberta" else enc.act_fn(c["hidden_act"])
    eps = c["layer_norm_eps"] if arch == "roberta" else 1e-12
    t = F.layer_norm(act(F.linear(x, P[dense + ".weight"], P[dense + ".bias"])), (H,),
                     P[ln + ".weight"], P[ln + ".bias"], eps)
    logits = F.linear(t, P["embeddings.word_embeddings.weight"], P[bias])
    loss = F.cross_entropy(logits.view(-1, V), labels.view(-1), ignore_index=-100)
    correct = int(((logits.argmax(-1) == labels) & (labels != -100)).sum())
    loss.backward()
    d = os.path.join(OUT, arch, "mlm")
    write_config(os.path.join(d, "model"), arch, c)
    name = lambda k: k if k.startswith(("lm_head", "vocab_")) else rename(arch, "bert." + k)  # noqa: E731
    stpy.save(os.path.join(d, "model", "model.safetensors"), {name(k): v for k, v in P32.items()},
              {"format": "pt"})
    exp = {"input_ids": ids.to(torch.int32).numpy(), "token_type_ids": tt.to(torch.int32).numpy(),
           "attention_mask": mask.to(torch.int32).numpy(), "labels": labels.to(torch.int32).numpy(),
           "loss": np.array([loss.item()], dtype=np.float32),
           "correct": np.array([correct], dtype=np.int32)}
    for k, v in P.items():
        exp["grad." + name(k)] = v.grad.detach().to(torch.float32).numpy()
    stpy.save(os.path.join(d, "expected.safetensors"), exp)


# ---- af-infer fixtures ------------------------------------------------------------------------

def infer_fixtures(arch, half=False):
    """gen-infer-fixtures.py's adapters (Pfeiffer a, b; Houlsby c, d), fusions (attention ab,
    gating cd), input lines and expected predictions, on A/f32 with A's forward and names (into
    A/infer), or on the half-precision base (A/infer-f16, A/infer-bf16)."""
    kind = half_base(arch)[2] if half else "f32"
    gi = _import("gen_infer_fixtures_%s_%s" % (arch, kind), "gen-infer-fixtures.py")
    gi.OUT = os.path.join(OUT, arch, "infer-" + kind if half else "infer")
    os.makedirs(gi.OUT, exist_ok=True)
    gi.stpy = RenamingStpy(arch)
    fwd = make_forward(arch)

    def forward(c, P, ids, tt, mask, hooks=()):
        enc.hook_site = gi.gf.hook_site
        return fwd(c, P, ids, tt, mask, hooks)
    gi.gf.forward = forward
    base = os.path.join(OUT, arch, kind)

    def load_base():
        if half:
            c, P, _ = half_base(arch)
        else:
            c = base_config(arch, 2, "gelu")
            P = drop_types(arch, enc.random_params(c, 21 if arch == "roberta" else 31))
        P = {k: v.to(torch.float64) for k, v in P.items()}
        meta = {"config": {"model_type": arch, "vocab_size": c["vocab_size"],
                           "hidden_size": c["hidden_size"], "num_hidden_layers": c["num_hidden_layers"],
                           "num_attention_heads": c["num_attention_heads"],
                           "intermediate_size": c["intermediate_size"], "hidden_act": c["hidden_act"]},
                "fingerprint": af_fingerprint.fingerprint(base)}
        return c, P, meta
    gi.load_base = load_base
    if arch == "roberta":  # one token type: RobertaModel would fail on type id 1, as af refuses it
        gi.LINES = [(ids, [0] * len(tt) if tt else None, m, x) for ids, tt, m, x in gi.LINES]
    gi.main()


def main():
    for arch in ("roberta", "distilbert"):
        encoder_fixtures(arch)
        infer_fixtures(arch)
        infer_fixtures(arch, half=True)
        mlm_fixture(arch)
    for arch in ("roberta", "distilbert"):
        saved = (tr.IDS, tr.TYPES, tr.batch)
        train_fixtures(arch)
        tr.IDS, tr.TYPES, tr.batch = saved


if __name__ == "__main__":
    main()
