#!/usr/bin/python3
"""gen-kernel-fixtures.py: PyTorch references for the adapter, fusion, head and site kernels.

Writes tests/fixtures/kernels/*.safetensors (read by tests/parity/kernels.c). Each file holds one
case: its configuration in __metadata__, the inputs, the parameters (`param.<name>`, AdapterHub's
names as lib/*.h tables them), the outputs, a fixed random upstream gradient `dout` (the head uses
its loss instead) and the gradients of everything (`grad.<input>`, `grad.param.<name>`).

The modules follow adapter-transformers 3.2.1 (AdapterHub) line by line where it has them
(Adapter, BertFusion with the Dynamic/Static configs, the classification head, the Pfeiffer and
Houlsby placement of AdapterLayer); multihead, weighted and gating are af's own (lib/fusion.h),
and multihead is checked here against torch.nn.MultiheadAttention. Dropout is off (eval mode).
Everything runs in float64 from float32-representable values, so the fixtures are the exact
answer the C float32 code is measured against.

Run with Debian's python3 (torch 1.13): /usr/bin/python3 scripts/gen-kernel-fixtures.py
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stpy  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "kernels")
torch.set_default_dtype(torch.float64)
H, M, N = 16, 10, 3


def rnd(*shape, scale=1.0):
    """float32-representable normals, as float64 leaves"""
    return (torch.randn(*shape) * scale).float().double()


# ---- AdapterHub modules ------------------------------------------------------------------------

ACTS = {"relu": torch.relu, "gelu": F.gelu, "swish": lambda x: x * torch.sigmoid(x), "tanh": torch.tanh}


class Adapter(nn.Module):
    """AdapterHub Adapter: adapter_down = Sequential(Linear(H, r), act), adapter_up = Linear(r, H)."""

    def __init__(self, H, r, act):
        super().__init__()
        self.act = ACTS[act]
        self.adapter_down = nn.Sequential(nn.Linear(H, r))
        self.adapter_up = nn.Linear(r, H)

    def forward(self, x):
        return self.adapter_up(self.act(self.adapter_down(x)))


class BertFusion(nn.Module):
    """adapter-transformers BertFusion.forward, with its config flags (residual added by caller)."""

    def __init__(self, H, config, T=1.0):
        super().__init__()
        self.config = config
        if config["query"]:
            self.query = nn.Linear(H, H)
        if config["key"]:
            self.key = nn.Linear(H, H)
        if config["value"]:
            self.value = nn.Linear(H, H, bias=False)
        self.dropout = nn.Dropout(0.1)
        self.T = T

    def forward(self, query, key, value):
        query_layer = self.query(query) if self.config["query"] else query
        key_layer = self.key(key) if self.config["key"] else key
        if self.config["value"] and self.config["value_before_softmax"]:
            value_layer = self.value(value)
        else:
            value_layer = value
        scores = torch.squeeze(torch.matmul(query_layer.unsqueeze(2), key_layer.transpose(-2, -1)), dim=2)
        scores = self.dropout(scores)
        probs = nn.Softmax(dim=-1)(scores / self.T)
        context = torch.squeeze(torch.matmul(probs.unsqueeze(2), value_layer), dim=2)
        if self.config["value"] and not self.config["value_before_softmax"]:
            context = self.value(context)
        return context, probs


DYNAMIC = dict(query=True, key=True, value=True, value_before_softmax=True)  # DynamicAdapterFusionConfig
STATIC = dict(query=True, key=True, value=False, value_before_softmax=True)  # StaticAdapterFusionConfig


class MultiheadFusion(nn.Module):
    """lib/fusion.h multihead: MHA among the N adapter outputs, mean over adapters, out_proj."""

    def __init__(self, H, heads, T=1.0):
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * H, H))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * H))
        self.out_proj = nn.Linear(H, H)
        self.heads, self.T = heads, T

    def forward(self, x, ups):  # ups [M, N, H]
        Mt, Nt, Ht = ups.shape
        d = Ht // self.heads
        q, k, v = F.linear(ups, self.in_proj_weight, self.in_proj_bias).split(Ht, dim=-1)
        split = lambda t: t.view(Mt, Nt, self.heads, d).transpose(1, 2)  # [M, heads, N, d]
        a = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (math.sqrt(d) * self.T), dim=-1)
        y = (a @ split(v)).transpose(1, 2).reshape(Mt, Nt, Ht)  # [M, N, H]
        p = a.mean(dim=2).mean(dim=1)  # share of each adapter's value: column means, head average
        return self.out_proj(y.mean(dim=1)), p


class WeightedFusion(nn.Module):
    def __init__(self, N):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(N))

    def forward(self, x, ups):
        p = torch.softmax(self.weights, dim=0).expand(ups.shape[0], -1)
        return (p.unsqueeze(-1) * ups).sum(1), p


class GatingFusion(nn.Module):
    def __init__(self, H, N, softmax):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(H, H // 2), nn.ReLU(), nn.Dropout(0.1), nn.Linear(H // 2, N))
        self.softmax = softmax

    def forward(self, x, ups):
        z = self.gate(x)
        g = torch.softmax(z, dim=-1) if self.softmax else torch.sigmoid(z)
        return (g.unsqueeze(-1) * ups).sum(1), g


def make_fusion(method, T=1.0, heads=4, gate_softmax=False):
    if method == "attention":
        f = BertFusion(H, DYNAMIC, T)
    elif method == "static":
        f = BertFusion(H, STATIC, T)
    elif method == "multihead":
        f = MultiheadFusion(H, heads, T)
    elif method == "weighted":
        f = WeightedFusion(N)
    else:
        f = GatingFusion(H, N, gate_softmax)
    # away from the init so every term matters; softmaxes kept unsaturated
    with torch.no_grad():
        for name, p in f.named_parameters():
            p.copy_(rnd(*p.shape, scale=1.0 if method == "weighted" else 0.2))
        if method == "attention":
            f.value.weight.add_(torch.eye(H))
    return f


def fuse(f, x, ups):
    if isinstance(f, BertFusion):  # AdapterHub's shapes: query [B, S, H], key/value [B, S, N, H]
        o, p = f(x[None], ups[None], ups[None])
        return o[0], p[0]
    return f(x, ups)


def head_module(L):
    """AdapterHub ClassificationHead (layers=2): Dropout, Linear, Tanh, Dropout, Linear"""
    hd = nn.Sequential(nn.Dropout(0.1), nn.Linear(H, H), nn.Tanh(), nn.Dropout(0.1), nn.Linear(H, L))
    with torch.no_grad():
        for p in hd.parameters():
            p.copy_(rnd(*p.shape, scale=0.3))
    return hd


# ---- writing -------------------------------------------------------------------------------------


def save(name, meta, tensors):
    out = {}
    for k, v in tensors.items():
        out[k] = v.detach().to(torch.float32).contiguous()
    path = os.path.join(OUT, name + ".safetensors")
    stpy.save(path, out, {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()})
    return os.path.getsize(path)


def params(module, prefix="param."):
    return {prefix + n: p for n, p in module.named_parameters()}


def grads(module, prefix="grad.param."):
    return {prefix + n: p.grad for n, p in module.named_parameters()}


# ---- cases ---------------------------------------------------------------------------------------


def case_adapter(act):
    r = 4
    ad = Adapter(H, r, act)
    with torch.no_grad():
        for p in ad.parameters():
            p.copy_(rnd(*p.shape, scale=0.4))
    x = rnd(M, H).requires_grad_()
    up = ad(x)
    dout = rnd(M, H)
    up.backward(dout)
    t = {"x": x}
    t.update(params(ad))
    t.update({"out": up, "dout": dout, "grad.x": x.grad})
    t.update(grads(ad))
    return save("adapter_" + act, dict(kind="adapter", H=H, M=M, r=r, act=act), t)


def case_fusion(name, method, T=1.0, heads=4, gate_softmax=False):
    f = make_fusion(method, T, heads, gate_softmax)
    f.eval()
    x = rnd(M, H).requires_grad_()
    ups = rnd(M, N, H).requires_grad_()
    o, p = fuse(f, x, ups)
    if method == "multihead" and T == 1.0:
        mha = nn.MultiheadAttention(H, heads, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(f.in_proj_weight)
            mha.in_proj_bias.copy_(f.in_proj_bias)
            mha.out_proj.weight.copy_(f.out_proj.weight)
            mha.out_proj.bias.copy_(f.out_proj.bias)
        mha.eval()
        ref, _ = mha(ups, ups, ups)
        assert torch.allclose(ref.mean(dim=1), o, atol=1e-12), "multihead != nn.MultiheadAttention"
    dout = rnd(M, H)
    o.backward(dout)
    t = {"x": x, "ups": ups}
    t.update(params(f))
    t.update({"out": o, "out_p": p, "dout": dout, "grad.x": x.grad if x.grad is not None else torch.zeros(M, H),
              "grad.ups": ups.grad})
    t.update(grads(f))
    meta = dict(kind="fusion", method=method, H=H, M=M, N=N, T=T, heads=heads, gate_softmax=int(gate_softmax))
    return save("fusion_" + name, meta, t)


def case_head(name, L, multilabel=False):
    B = 6
    hd = head_module(L)
    hd.eval()
    cls = rnd(B, H).requires_grad_()
    logits = hd(cls)
    t = {"cls": cls}
    if multilabel:
        # AdapterHub's MultiLabelClassificationHead: BCEWithLogitsLoss on float 0/1 targets
        targets = torch.randint(0, 2, (B, L)).float()
        loss = nn.BCEWithLogitsLoss()(logits, targets)
        t["targets"] = targets
        t["probs"] = torch.sigmoid(logits)
    elif L == 1:
        targets = rnd(B)
        loss = F.mse_loss(logits.squeeze(-1), targets)
        t["targets"] = targets
    else:
        labels = torch.randint(0, L, (B,))
        loss = F.cross_entropy(logits, labels)
        t["labels"] = labels.double()
    loss.backward()
    t.update({"param." + n: p for n, p in hd.named_parameters()})
    t.update({"logits": logits, "loss": loss.reshape(1), "grad.cls": cls.grad})
    t.update({"grad.param." + n: p.grad for n, p in hd.named_parameters()})
    meta = dict(kind="head", H=H, L=L, B=B)
    if multilabel:
        meta["head_kind"] = "multilabel"  # absent: cross-entropy, or MSE for L = 1
    return save("head_" + name, meta, t)


def case_site(name, arch, n_adapters, act, method=None, T=1.0):
    """AdapterLayer at BertOutput: pfeiffer x = LN(h + r), houlsby x = h; out = LN(c + h + r)."""
    r_dim = [4, 3, 2][:n_adapters]
    eps = 1e-12
    adapters = [Adapter(H, r_dim[i], act) for i in range(n_adapters)]
    for ad in adapters:
        with torch.no_grad():
            for p in ad.parameters():
                p.copy_(rnd(*p.shape, scale=0.4))
    ln = nn.LayerNorm(H, eps=eps)
    with torch.no_grad():
        ln.weight.copy_(1 + rnd(H, scale=0.3))
        ln.bias.copy_(rnd(H, scale=0.3))
    h = rnd(M, H).requires_grad_()
    r = rnd(M, H).requires_grad_()
    x = ln(h + r) if arch == "pfeiffer" else h  # AdapterLayer.pre_forward
    t = {"h": h, "r": r, "ln.weight": ln.weight, "ln.bias": ln.bias}
    f = None
    if method is None:
        c = adapters[0](x) + h  # Adapter.forward with residual_before_ln: up + residual (= h)
    else:
        f = make_fusion(method, T)
        f.eval()
        ups = torch.stack([ad(x) for ad in adapters], dim=1)
        o, p = fuse(f, x, ups)
        c = o + h  # BertFusion: context_layer += residual
        t["out_p"] = p
    out = ln(c + r)  # AdapterLayer.post_forward: original_ln_after
    dout = rnd(M, H)
    out.backward(dout)
    for i, ad in enumerate(adapters):
        t.update(params(ad, "param.adapter.%d." % i))
    if f is not None:
        t.update(params(f, "param.fusion."))
    t.update({"out": out, "dout": dout, "grad.h": h.grad, "grad.r": r.grad})
    for i, ad in enumerate(adapters):
        t.update(grads(ad, "grad.param.adapter.%d." % i))
    if f is not None:
        t.update(grads(f, "grad.param.fusion."))
    meta = dict(kind="site", arch=arch, H=H, M=M, N=n_adapters, r=r_dim, act=act, eps=eps, T=T,
                method=method or "none", heads=4)
    return save("site_" + name, meta, t)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(20240601)
    total = 0
    for act in ("relu", "gelu", "swish", "tanh"):
        total += case_adapter(act)
    total += case_fusion("attention", "attention")
    total += case_fusion("attention_t", "attention", T=2.5)
    total += case_fusion("static", "static")
    total += case_fusion("multihead", "multihead")
    total += case_fusion("multihead_t", "multihead", T=2.0, heads=2)
    total += case_fusion("weighted", "weighted")
    total += case_fusion("gating", "gating")
    total += case_fusion("gating_softmax", "gating", gate_softmax=True)
    total += case_head("classification", 3)
    total += case_head("regression", 1)
    total += case_site("pfeiffer", "pfeiffer", 1, "relu")
    total += case_site("pfeiffer_fusion", "pfeiffer", 3, "relu", "attention")
    total += case_site("pfeiffer_fusion_t", "pfeiffer", 3, "relu", "attention", T=1.7)
    total += case_site("houlsby", "houlsby", 1, "swish")
    total += case_site("houlsby_fusion", "houlsby", 3, "swish", "attention")
    # last, so the cases above draw the same numbers as before it was added
    total += case_head("multilabel", 4, multilabel=True)
    print("wrote %d bytes to %s" % (total, os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
