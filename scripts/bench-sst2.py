#!/usr/bin/env python3
"""bench-sst2.py: the PyTorch side of the real-data row of `make bench`: one epoch of adapter
training (Pfeiffer, reduction 16, relu, 2-label head; base frozen) on tokenized SST-2, over exactly
the batches af-train-adapter uses (tests/bench/bench-plan prints them), with the peer's model
(ref_adapterfusion.py, imported read-only from --peer).

  /usr/bin/python3 scripts/bench-sst2.py --peer ../shared/peer --data train.jsonl --plan plan.txt

Each step is what af-train-adapter does per batch: pad to the batch's longest example, forward in
train() mode (dropout 0.1), cross-entropy, backward, clip the gradient norm to 1, AdamW. Prints one
line of key=value pairs; the time is the epoch loop alone (model building and reading excluded).
"""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--peer", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--plan", required=True)
ap.add_argument("--model", default="mini")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--lr", type=float, default=1e-4)
args = ap.parse_args()

os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_torch.py: before torch loads libgomp
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
sys.path.insert(0, args.peer)

import torch  # noqa: E402
from ref_adapterfusion import RefBertAdapterModel  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)

ids, labels = [], []
for line in open(args.data):
    ex = json.loads(line)
    ids.append(ex["input_ids"])
    labels.append(int(ex["label"]))
plan = [[int(t) for t in line.split()] for line in open(args.plan) if line.strip()]

model = RefBertAdapterModel(args.model)
model.add_adapter("a0", 16)
model.add_classification_head("h")
model.train_adapter("a0")
model.train()
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)

examples = tokens = 0
t0 = time.perf_counter()
for batch in plan:
    S = max(len(ids[i]) for i in batch)
    x = torch.zeros(len(batch), S, dtype=torch.long)
    am = torch.zeros(len(batch), S, dtype=torch.long)
    for r, i in enumerate(batch):
        x[r, : len(ids[i])] = torch.tensor(ids[i])
        am[r, : len(ids[i])] = 1
    y = torch.tensor([labels[i] for i in batch])
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x, am), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()
    examples += len(batch)
    tokens += len(batch) * S
dt = time.perf_counter() - t0
print(f"impl=torch examples={examples} batches={len(plan)} padded_tokens={tokens} epoch_s={dt:.3f} "
      f"ex_per_s={examples / dt:.1f} loss_last={loss.item():.4f}")
