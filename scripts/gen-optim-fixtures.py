#!/usr/bin/python3
"""gen-optim-fixtures.py: reference AdamW trajectories for tests/unit/optim.c.

Run with Debian's python3 (torch 1.13):  /usr/bin/python3 scripts/gen-optim-fixtures.py
Writes tests/fixtures/optim/{warmup,nowarmup}.safetensors.

Two optimizer groups as af-fuse builds them (fusion lr, adapter lr), each split the Hugging Face
way into a decayed part and a no-decay part (biases, LayerNorm weights), which torch expresses as
four param groups with weight_decay 0 on the no-decay ones. Each step: clip_grad_norm_ over all
parameters (max_norm 1.0; the gradient scales are chosen so clipping bites on some steps only),
optimizer.step(), scheduler.step() -- the order of transformers.Trainer.

Per file: <p>.init, and for each step k: <p>.grad.<k> (before clipping), norm.<k> (the total norm
clip_grad_norm_ returned), <p>.after.<k>; at the end <p>.exp_avg and <p>.exp_avg_sq.
The C test hard-codes the configuration below; keep the two in step."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stpy  # noqa: E402

PARAMS = [  # name, shape, group, decay
    ("a.weight", (4, 3), 0, True),
    ("a.bias", (3,), 0, False),
    ("ln.weight", (5,), 0, False),
    ("b.weight", (2, 3), 1, True),
    ("b.bias", (2,), 1, False),
]
GROUPS = [(1e-3, 0.01), (5e-4, 0.1)]  # lr, weight decay
STEPS = 5
GRAD_SCALE = [0.05, 2.0, 0.1, 5.0, 0.3]  # total norms ~0.25, 10, 0.5, 25, 1.5 against max 1.0
MAX_NORM = 1.0
CASES = {"warmup": (4, 2), "nowarmup": (5, 0)}  # name: (total steps T, warmup W); T=4 < 5 steps
                                                 # so the last step runs at the clamped lr 0


def linear_schedule(T, W):
    # transformers.get_linear_schedule_with_warmup's lr_lambda
    def f(k):
        if k < W:
            return float(k) / float(max(1, W))
        return max(0.0, float(T - k) / float(max(1, T - W)))
    return f


def run(T, W):
    g = torch.Generator().manual_seed(1234)
    params = {n: torch.randn(s, generator=g).requires_grad_() for n, s, _, _ in PARAMS}
    grads = [{n: torch.randn(s, generator=g) * GRAD_SCALE[k] for n, s, _, _ in PARAMS}
             for k in range(STEPS)]
    out = {f"{n}.init": params[n].detach().clone() for n in params}
    groups = []
    for gi, (lr, wd) in enumerate(GROUPS):
        for decay in (True, False):
            ps = [params[n] for n, _, pg, d in PARAMS if pg == gi and d == decay]
            groups.append({"params": ps, "lr": lr, "weight_decay": wd if decay else 0.0})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(T, W))
    for k in range(STEPS):
        for n in params:
            params[n].grad = grads[k][n].clone()
            out[f"{n}.grad.{k}"] = grads[k][n]
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)
        out[f"norm.{k}"] = norm.reshape(1)
        opt.step()
        sched.step()
        for n in params:
            out[f"{n}.after.{k}"] = params[n].detach().clone()
    for n in params:
        st = opt.state[params[n]]
        out[f"{n}.exp_avg"] = st["exp_avg"]
        out[f"{n}.exp_avg_sq"] = st["exp_avg_sq"]
    return out


def main():
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    d = os.path.join(top, "tests", "fixtures", "optim")
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(1)
    for name, (T, W) in CASES.items():
        path = os.path.join(d, f"{name}.safetensors")
        stpy.save(path, run(T, W), {"torch": torch.__version__, "total_steps": T,
                                    "warmup_steps": W, "max_norm": MAX_NORM})
        print(path)


if __name__ == "__main__":
    main()
