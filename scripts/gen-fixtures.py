#!/usr/bin/python3
"""gen-fixtures.py: PyTorch reference fixtures for the BERT encoder (tests/fixtures/encoder/).

Run with Debian's python3 (torch 1.13); no transformers package: the encoder below is written from
Hugging Face's BertModel (modeling_bert.py, post-LN) with its parameter names, the way
../shared/peer/ref_adapterfusion.py does. The reference runs in float64 on the float32 (or F16/BF16-
rounded) weights, so the expected values do not depend on torch's float32 kernels and the script
writes the same bytes on every machine.

Writes, for tiny random-weight models in real HF layout (config.json + model.safetensors):
  f32/   "bert." prefix, LayerNorm gamma/beta, F32, gelu (erf), plus tensors a loader must ignore
         (position_ids, pooler, cls); expected.safetensors: inputs, hidden states of every layer,
         loss = sum(last hidden * loss_weight), d loss / d hidden of every layer; grad/ holds d loss
         / d every weight as another HF-layout model (so a loader maps it like the weights);
         hooked.safetensors: the same model with a test hook at two sites (see hook_site).
  f16/   no prefix, weight/bias names, F16, gelu_new, layer_norm_eps 1e-5, 3 layers;
         expected.safetensors from the F16-rounded weights, plus hidden_unrounded.* from the float32
         weights before rounding.
  bf16/  "bert." prefix, weight/bias, BF16, relu.
Usage: /usr/bin/python3 scripts/gen-fixtures.py [OUTDIR]"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stpy  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "encoder")

torch.set_default_dtype(torch.float64)

# Two sequences of different lengths, right-padded to the longer one with pad_token_id 0.
INPUT_IDS = [[2, 17, 33, 5, 61, 9, 3], [2, 44, 12, 3, 0, 0, 0]]
TOKEN_TYPES = [[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0, 0]]
MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]]


def config(layers, act, eps, dropout=0.1):
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": 64, "hidden_size": 32,
        "num_hidden_layers": layers, "num_attention_heads": 4, "intermediate_size": 64,
        "hidden_act": act, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": 16, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": eps, "pad_token_id": 0, "position_embedding_type": "absolute",
    }


def param_shapes(c):
    """HF BertModel state_dict names (without "bert.") and shapes, in state_dict order."""
    H, Fd = c["hidden_size"], c["intermediate_size"]
    out = [("embeddings.word_embeddings.weight", (c["vocab_size"], H)),
           ("embeddings.position_embeddings.weight", (c["max_position_embeddings"], H)),
           ("embeddings.token_type_embeddings.weight", (c["type_vocab_size"], H)),
           ("embeddings.LayerNorm.weight", (H,)), ("embeddings.LayerNorm.bias", (H,))]
    for l in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        for n in ("query", "key", "value"):
            out += [(p + "attention.self.%s.weight" % n, (H, H)), (p + "attention.self.%s.bias" % n, (H,))]
        out += [(p + "attention.output.dense.weight", (H, H)), (p + "attention.output.dense.bias", (H,)),
                (p + "attention.output.LayerNorm.weight", (H,)), (p + "attention.output.LayerNorm.bias", (H,)),
                (p + "intermediate.dense.weight", (Fd, H)), (p + "intermediate.dense.bias", (Fd,)),
                (p + "output.dense.weight", (H, Fd)), (p + "output.dense.bias", (H,)),
                (p + "output.LayerNorm.weight", (H,)), (p + "output.LayerNorm.bias", (H,))]
    return out


def random_params(c, seed):
    """float32 weights, larger than BERT's 0.02 init so attention and activations are far from
    trivial (scores of order 1, LayerNorm affine parameters away from 1 and 0)."""
    g = torch.Generator().manual_seed(seed)
    ps = {}
    for name, shape in param_shapes(c):
        if name.endswith("LayerNorm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif "embeddings" in name:
            t = 0.5 * torch.randn(shape, generator=g)
        else:
            t = 0.2 * torch.randn(shape, generator=g)
        ps[name] = t.to(torch.float32)
    return ps


def act_fn(name):
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    raise ValueError(name)


def hook_site(h, r, w, b, eps):
    """The deterministic test hook: out = LN(h + r + 0.5 h²) with the site's own LayerNorm."""
    return F.layer_norm(h + r + 0.5 * h * h, (h.shape[-1],), w, b, eps)


def forward(c, P, ids, tt, mask, hooks=()):
    """BertModel forward in eval mode. Returns hidden states (embeddings first) and the site
    tensors {(layer, site): (h, r, out)}; hooks: set of (layer, site), site 0 = attention output,
    1 = FFN output."""
    H, nh, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    d = H // nh
    B, S = ids.shape
    act = act_fn(c["hidden_act"])
    e = F.embedding(ids, P["embeddings.word_embeddings.weight"], padding_idx=c["pad_token_id"])
    e = e + F.embedding(tt, P["embeddings.token_type_embeddings.weight"])
    e = e + P["embeddings.position_embeddings.weight"][torch.arange(S)][None]
    x = F.layer_norm(e, (H,), P["embeddings.LayerNorm.weight"], P["embeddings.LayerNorm.bias"], eps)
    hidden, sites = [x], {}
    # HF get_extended_attention_mask: (1 - mask) * finfo.min, added to the scaled scores
    mask_add = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min

    def site(l, s, h, r, name):
        w, b = P[name + ".LayerNorm.weight"], P[name + ".LayerNorm.bias"]
        out = hook_site(h, r, w, b, eps) if (l, s) in hooks else F.layer_norm(h + r, (H,), w, b, eps)
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


def inputs():
    return (torch.tensor(INPUT_IDS), torch.tensor(TOKEN_TYPES), torch.tensor(MASK))


def loss_weight(c, seed):
    g = torch.Generator().manual_seed(seed)
    B, S = len(INPUT_IDS), len(INPUT_IDS[0])
    return torch.randn((B, S, c["hidden_size"]), generator=g).to(torch.float32)


def f32(t):
    return t.detach().to(torch.float32).numpy()


def run(c, P32, hooks=(), grads=True):
    """Forward + backward of loss = sum(last hidden * R). Returns a dict of expected tensors and
    the weight gradients."""
    P = {k: v.to(torch.float64).requires_grad_(True) for k, v in P32.items()}
    ids, tt, mask = inputs()
    R = loss_weight(c, 7)
    hidden, sites = forward(c, P, ids, tt, mask, hooks)
    for h in hidden:
        h.retain_grad()
    for (h, r, out) in sites.values():
        for t in (h, r, out):
            t.retain_grad()
    loss = (hidden[-1] * R.to(torch.float64)).sum()
    loss.backward()
    exp = {"input_ids": ids.to(torch.int32).numpy(), "token_type_ids": tt.to(torch.int32).numpy(),
           "attention_mask": mask.to(torch.int32).numpy(), "loss_weight": f32(R),
           "loss": np.array([loss.item()], dtype=np.float32)}
    for i, h in enumerate(hidden):
        exp["hidden.%d" % i] = f32(h)  # hidden.0: embeddings, hidden.l+1: after layer l
        exp["dhidden.%d" % i] = f32(h.grad)
    for (l, s), (h, r, out) in sorted(sites.items()):
        if (l, s) not in hooks:
            continue
        # the site's own share of the gradient: its vector-Jacobian product with d loss / d out
        hh, rr = h.detach().requires_grad_(True), r.detach().requires_grad_(True)
        name = "encoder.layer.%d.%s" % (l, "attention.output" if s == 0 else "output")
        o = hook_site(hh, rr, P[name + ".LayerNorm.weight"].detach(),
                      P[name + ".LayerNorm.bias"].detach(), c["layer_norm_eps"])
        dh, dr = torch.autograd.grad(o, (hh, rr), out.grad)
        exp["site.%d.%d.h" % (l, s)] = f32(h)
        exp["site.%d.%d.r" % (l, s)] = f32(r)
        exp["site.%d.%d.dout" % (l, s)] = f32(out.grad)
        exp["site.%d.%d.dh" % (l, s)] = f32(dh)
        exp["site.%d.%d.dr" % (l, s)] = f32(dr)
    g = {k: f32(v.grad) for k, v in P.items()} if grads else None
    return exp, g


def write_config(d, c):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")


def gamma_beta(name):
    return name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")


def bf16_bytes(a):
    """float32 -> bfloat16, round to nearest even (as torch and st_f32_to_bf16 do)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2")


def from_bf16(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)

    # f32: "bert." prefix, gamma/beta, gelu, and tensors the loader must skip
    c = config(2, "gelu", 1e-12)
    P = random_params(c, 1)
    d = os.path.join(OUT, "f32")
    os.makedirs(os.path.join(d, "grad"), exist_ok=True)
    write_config(d, c)
    H = c["hidden_size"]
    g = torch.Generator().manual_seed(99)
    t = {"bert." + gamma_beta(k): v for k, v in P.items()}
    t["bert.embeddings.position_ids"] = np.arange(c["max_position_embeddings"], dtype=np.int64)[None]
    t["bert.pooler.dense.weight"] = torch.randn((H, H), generator=g).to(torch.float32)
    t["bert.pooler.dense.bias"] = torch.zeros(H, dtype=torch.float32)
    t["cls.predictions.bias"] = torch.zeros(c["vocab_size"], dtype=torch.float32)
    stpy.save(os.path.join(d, "model.safetensors"), t, {"format": "pt"})
    exp, grads = run(c, P)
    stpy.save(os.path.join(d, "expected.safetensors"), exp)
    write_config(os.path.join(d, "grad"), c)
    stpy.save(os.path.join(d, "grad", "model.safetensors"), {"bert." + k: v for k, v in grads.items()})
    hexp, _ = run(c, P, hooks={(0, 1), (1, 0)}, grads=False)
    stpy.save(os.path.join(d, "hooked.safetensors"), hexp)

    # f16: no prefix, weight/bias, gelu_new, eps 1e-5, 3 layers
    c = config(3, "gelu_new", 1e-5)
    P = random_params(c, 2)
    P16 = {k: torch.from_numpy(v.numpy().astype(np.float16).astype(np.float32)) for k, v in P.items()}
    d = os.path.join(OUT, "f16")
    os.makedirs(d, exist_ok=True)
    write_config(d, c)
    stpy.save(os.path.join(d, "model.safetensors"), {k: v.numpy().astype(np.float16) for k, v in P.items()})
    exp, _ = run(c, P16, grads=False)
    ref, _ = run(c, P, grads=False)
    for i in range(c["num_hidden_layers"] + 1):
        exp["hidden_unrounded.%d" % i] = ref["hidden.%d" % i]
    stpy.save(os.path.join(d, "expected.safetensors"), exp)

    # bf16: prefix, weight/bias, relu
    c = config(2, "relu", 1e-12)
    P = random_params(c, 3)
    d = os.path.join(OUT, "bf16")
    os.makedirs(d, exist_ok=True)
    write_config(d, c)
    entries, Pb = [], {}
    for k, v in P.items():
        u = bf16_bytes(v.numpy())
        entries.append(("bert." + k, "BF16", list(v.shape), u.tobytes()))
        Pb[k] = torch.from_numpy(from_bf16(u).reshape(v.shape))
    stpy.save_raw(os.path.join(d, "model.safetensors"), entries)
    exp, _ = run(c, Pb, grads=False)
    stpy.save(os.path.join(d, "expected.safetensors"), exp)


if __name__ == "__main__":
    main()
