#!/usr/bin/python3
"""bench_torch_arch.py: ../shared/peer/bench_torch.py's --impl hub measurement, extended to
roberta-base and distilbert-base (the peer's own script stays as it is): the real AdapterHub
(adapter-transformers 3.2.1 from source, extracted by ../shared/peer/setup_adapterhub.sh) with
RobertaAdapterModel / DistilBertAdapterModel of those configs and random weights, one Pfeiffer
adapter (reduction 16) or an attention fusion of 3, a 2-label head; the same steps, timing and
JSON line as the peer's (examples/s from the median step).

  /usr/bin/python3 scripts/bench_torch_arch.py --hub-src build/hub-src --model roberta-base \
      --mode fusion --batch 16 --seq 128"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", choices=["roberta-base", "distilbert-base"], required=True)
ap.add_argument("--mode", choices=["infer", "infer_adapter", "infer_fusion", "adapter", "fusion"],
                default="adapter")
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=4)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--hub-src", default="build/hub-src")
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the peer: libgomp's spinning starves BLAS
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
sys.path.insert(0, os.path.abspath(args.hub_src))

import torch  # noqa: E402
from transformers import DistilBertConfig, RobertaConfig  # noqa: E402
from transformers.adapters import (DistilBertAdapterModel, Fuse, PfeifferConfig,  # noqa: E402
                                   RobertaAdapterModel)

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
ADAPTERS = ["a0", "a1", "a2"]


def build():
    if args.model == "roberta-base":
        cfg = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                            layer_norm_eps=1e-5)
        m = RobertaAdapterModel(cfg)
    else:
        m = DistilBertAdapterModel(DistilBertConfig())
    if args.mode in ("adapter", "infer_adapter"):
        m.add_adapter("a0", config=PfeifferConfig(reduction_factor=16))
        m.add_classification_head("h", num_labels=2)
        m.train_adapter("a0") if args.mode == "adapter" else m.set_active_adapters("a0")
    elif args.mode in ("fusion", "infer_fusion"):
        for n in ADAPTERS:
            m.add_adapter(n, config=PfeifferConfig(reduction_factor=16))
        m.add_adapter_fusion(Fuse(*ADAPTERS))
        m.add_classification_head("h", num_labels=2)
        if args.mode == "fusion":
            m.train_adapter_fusion(Fuse(*ADAPTERS))
        else:
            m.set_active_adapters(Fuse(*ADAPTERS))
    else:
        m.add_classification_head("h", num_labels=2)
    return m


def main():
    m = build()
    B, S = args.batch, args.seq
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(3, m.config.vocab_size, (B, S), generator=g)
    am = torch.ones(B, S, dtype=torch.long)
    labels = torch.randint(0, 2, (B,), generator=g)
    train = args.mode in ("adapter", "fusion")
    trainable = [p for p in m.parameters() if p.requires_grad]
    if train:
        m.train()
        opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01)
    else:
        m.eval()
    times = []
    for it in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        if train:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(m(input_ids=ids, attention_mask=am).logits,
                                                     labels)
            if args.mode == "fusion":
                loss = loss + m.base_model.get_fusion_regularization_loss()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                m(input_ids=ids, attention_mask=am).logits.sum().item()
        if it >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps(dict(impl="hub", model=args.model, mode=args.mode, batch=B, seq=S,
                          threads=args.threads, median_step_s=round(med, 5),
                          ex_per_s=round(B / med, 3),
                          maxrss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                          torch=torch.__version__)))


if __name__ == "__main__":
    main()
