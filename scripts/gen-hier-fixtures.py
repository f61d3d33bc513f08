#!/usr/bin/python3
"""gen-hier-fixtures.py: PyTorch references for hierarchical fusion at a site (lib/fusion_tree.h).

Writes tests/fixtures/kernels/hier_*.safetensors (read by tests/parity/hier.c), in the layout of
gen-kernel-fixtures.py, whose modules it uses (Adapter, BertFusion with the Dynamic/Static
configs as AdapterHub's adapter-transformers 3.2.1 has them, af's weighted and gating): a site
with N adapters whose outputs feed a tree of fusions. AdapterHub has no fusion of fusions; the
definition is af's (af-fuse(1), lib/fusion_tree.h): an inner fusion takes the site's query input
x, as the fusion it was trained as did, and its fused value (before any residual) is one more
input of the fusion above, as an adapter's up output is. The inner fusions are frozen: their
parameters get no gradient here, but the gradient flows through them to x and the adapters.

Per case, __metadata__ "tree" lists the inner fusions in evaluation order, each {"method", "T",
"in"} with in[j] >= 0 an adapter and -1 - k inner fusion k, and "root" is the site's fusion in
the same form. Tensors: param.adapter.I.*, param.inner.K.* (inner fusion K), param.fusion.*
(the root), inputs h, r, ln.*, the output out, the weights out_p (root) and inner_p.K, a fixed
upstream gradient dout, and grad.h, grad.r, grad.param.adapter.I.*, grad.param.fusion.*.
Float64 throughout from float32-representable values, dropout off.

Run with Debian's python3 (torch 1.13): /usr/bin/python3 scripts/gen-hier-fixtures.py
"""
import importlib.util
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("kf", os.path.join(HERE, "gen-kernel-fixtures.py"))
kf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kf)  # sets float64 as the default dtype
H, M = kf.H, kf.M


def make(method, n, T):
    """A fusion module of n inputs with random weights (gen-kernel-fixtures' make_fusion for n)."""
    kf.N = n  # make_fusion sizes weighted and gating by the module's N
    f = kf.make_fusion(method, T)
    f.eval()
    return f


def case(name, arch, n_adapters, inner, root, seed):
    torch.manual_seed(seed)
    r_dim = [4, 3, 2, 3][:n_adapters]
    eps = 1e-12
    adapters = [kf.Adapter(H, r_dim[i], "relu" if arch == "pfeiffer" else "swish") for i in range(n_adapters)]
    for ad in adapters:
        with torch.no_grad():
            for p in ad.parameters():
                p.copy_(kf.rnd(*p.shape, scale=0.4))
    ln = nn.LayerNorm(H, eps=eps)
    with torch.no_grad():
        ln.weight.copy_(1 + kf.rnd(H, scale=0.3))
        ln.bias.copy_(kf.rnd(H, scale=0.3))
    h = kf.rnd(M, H).requires_grad_()
    r = kf.rnd(M, H).requires_grad_()
    x = ln(h + r) if arch == "pfeiffer" else h  # AdapterLayer.pre_forward
    ups = [ad(x) for ad in adapters]
    mods, outs, t = [], [], {"h": h, "r": r, "ln.weight": ln.weight, "ln.bias": ln.bias}
    for k, nd in enumerate(inner):
        f = make(nd["method"], len(nd["in"]), nd["T"])
        for p in f.parameters():
            p.requires_grad_(False)  # frozen: inputs of the fusion above, never trained
        ins = torch.stack([ups[j] if j >= 0 else outs[-1 - j] for j in nd["in"]], dim=1)
        o, p = kf.fuse(f, x, ins)
        outs.append(o)
        mods.append(f)
        t["inner_p.%d" % k] = p
        t.update(kf.params(f, "param.inner.%d." % k))
    f = make(root["method"], len(root["in"]), root["T"])
    ins = torch.stack([ups[j] if j >= 0 else outs[-1 - j] for j in root["in"]], dim=1)
    o, p = kf.fuse(f, x, ins)
    out = ln(o + h + r)  # the fused value joins the residual, as a flat fusion's does
    dout = kf.rnd(M, H)
    out.backward(dout)
    for i, ad in enumerate(adapters):
        t.update(kf.params(ad, "param.adapter.%d." % i))
    t.update(kf.params(f, "param.fusion."))
    t.update({"out": out, "out_p": p, "dout": dout, "grad.h": h.grad, "grad.r": r.grad})
    for i, ad in enumerate(adapters):
        t.update(kf.grads(ad, "grad.param.adapter.%d." % i))
    t.update(kf.grads(f, "grad.param.fusion."))
    meta = dict(kind="hier", arch=arch, H=H, M=M, N=n_adapters, r=r_dim, eps=eps, heads=4,
                tree=inner, root=root)
    return kf.save("hier_" + name, meta, t)


def main():
    total = 0
    # the tree: attention over (attention over A, B) and C
    total += case("pfeiffer", "pfeiffer", 3, [{"method": "attention", "T": 1.0, "in": [0, 1]}],
                  {"method": "attention", "T": 1.5, "in": [-1, 2]}, 1)
    # three levels, other methods: static over (C, gating over (weighted over B, D), A)
    total += case("houlsby_3", "houlsby", 4,
                  [{"method": "weighted", "T": 1.0, "in": [1, 3]},
                   {"method": "gating", "T": 1.0, "in": [-1, 0]}],
                  {"method": "static", "T": 1.0, "in": [2, -2]}, 2)
    print("wrote %d bytes of fixtures to %s" % (total, kf.OUT))


if __name__ == "__main__":
    main()
