#!/usr/bin/python3
"""gen-mlm-fixtures.py: PyTorch reference for af's MLM pretraining step (tests/parity/mlm.c).

Run with Debian's /usr/bin/python3 (torch 1.13); writes tests/fixtures/mlm/:
  model/config.json, model/model.safetensors   a tiny random BertForMaskedLM (HF names, F32)
  expected.safetensors   inputs (already masked), labels (-100 where not masked), the MLM loss,
                         and the gradient of that loss for every parameter ("grad.<name>")

The model is HF's BertForMaskedLM written out in torch (transformers is not packaged for
Debian 12): BertModel without pooler, then BertLMPredictionHead: dense, activation, LayerNorm,
decoder tied to the word embeddings plus cls.predictions.bias; CrossEntropyLoss with
ignore_index=-100, mean over the masked positions. Computed in float64 so the reference is
exact to float32's precision. Dropout 0 (eval-equivalent), as the parity test runs it."""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stpy  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "mlm")

CONFIG = {
    "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 40,
    "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 16, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}
# 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK]; row 2 is padded; labels mark the masked positions
INPUT_IDS = [[2, 4, 11, 12, 4, 30, 7, 3, 21, 4, 3],
             [2, 17, 4, 25, 9, 39, 3, 0, 0, 0, 0]]
TOKEN_TYPES = [[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], [0] * 11]
MASK = [[1] * 11, [1] * 7 + [0] * 4]
LABELS = [[-100, 8, -100, -100, 15, 33, -100, -100, -100, 22, -100],
          [-100, -100, 19, -100, -100, 6, -100, -100, -100, -100, -100]]


def shapes(c):
    V, H, F_, P, T = (c["vocab_size"], c["hidden_size"], c["intermediate_size"],
                      c["max_position_embeddings"], c["type_vocab_size"])
    s = {"bert.embeddings.word_embeddings.weight": (V, H),
         "bert.embeddings.position_embeddings.weight": (P, H),
         "bert.embeddings.token_type_embeddings.weight": (T, H),
         "bert.embeddings.LayerNorm.weight": (H,), "bert.embeddings.LayerNorm.bias": (H,)}
    for l in range(c["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l
        for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            s[p + n + ".weight"], s[p + n + ".bias"] = (H, H), (H,)
        s[p + "attention.output.LayerNorm.weight"] = (H,)
        s[p + "attention.output.LayerNorm.bias"] = (H,)
        s[p + "intermediate.dense.weight"], s[p + "intermediate.dense.bias"] = (F_, H), (F_,)
        s[p + "output.dense.weight"], s[p + "output.dense.bias"] = (H, F_), (H,)
        s[p + "output.LayerNorm.weight"], s[p + "output.LayerNorm.bias"] = (H,), (H,)
    s["cls.predictions.transform.dense.weight"] = (H, H)
    s["cls.predictions.transform.dense.bias"] = (H,)
    s["cls.predictions.transform.LayerNorm.weight"] = (H,)
    s["cls.predictions.transform.LayerNorm.bias"] = (H,)
    s["cls.predictions.bias"] = (V,)
    return s


def params(c, seed):
    """Random weights large enough that every term matters (not BERT's 0.02 init)."""
    g = torch.Generator().manual_seed(seed)
    P = {}
    for n, sh in shapes(c).items():
        if n.endswith("LayerNorm.weight"):
            P[n] = 1.0 + 0.2 * torch.randn(sh, generator=g)
        elif len(sh) == 1:
            P[n] = 0.1 * torch.randn(sh, generator=g)
        else:
            P[n] = 0.3 * torch.randn(sh, generator=g)
    return {k: v.to(torch.float32) for k, v in P.items()}


def mlm_loss(c, P, ids, tt, mask, labels):
    H, nh, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    d = H // nh
    B, S = ids.shape
    act = F.gelu  # config hidden_act "gelu": the exact erf form
    E = P["bert.embeddings.word_embeddings.weight"]
    e = F.embedding(ids, E) + F.embedding(tt, P["bert.embeddings.token_type_embeddings.weight"])
    e = e + P["bert.embeddings.position_embeddings.weight"][torch.arange(S)][None]
    x = F.layer_norm(e, (H,), P["bert.embeddings.LayerNorm.weight"],
                     P["bert.embeddings.LayerNorm.bias"], eps)
    mask_add = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    for l in range(c["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l

        def lin(t, n):
            return F.linear(t, P[p + n + ".weight"], P[p + n + ".bias"])

        def split(t):
            return t.view(B, S, nh, d).permute(0, 2, 1, 3)

        q, k, v = (split(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask_add
        ctx = torch.matmul(torch.softmax(s, dim=-1), v).permute(0, 2, 1, 3).reshape(B, S, H)
        a = F.layer_norm(lin(ctx, "attention.output.dense") + x, (H,),
                         P[p + "attention.output.LayerNorm.weight"],
                         P[p + "attention.output.LayerNorm.bias"], eps)
        h2 = lin(act(lin(a, "intermediate.dense")), "output.dense")
        x = F.layer_norm(h2 + a, (H,), P[p + "output.LayerNorm.weight"],
                         P[p + "output.LayerNorm.bias"], eps)
    t = F.linear(x, P["cls.predictions.transform.dense.weight"],
                 P["cls.predictions.transform.dense.bias"])
    t = F.layer_norm(act(t), (H,), P["cls.predictions.transform.LayerNorm.weight"],
                     P["cls.predictions.transform.LayerNorm.bias"], eps)
    logits = F.linear(t, E, P["cls.predictions.bias"])  # decoder tied to the word embeddings
    loss = F.cross_entropy(logits.view(-1, c["vocab_size"]), labels.view(-1), ignore_index=-100)
    correct = ((logits.argmax(-1) == labels) & (labels != -100)).sum()
    return loss, int(correct)


def main():
    c = CONFIG
    P32 = params(c, 1234)
    P = {k: v.to(torch.float64).requires_grad_(True) for k, v in P32.items()}
    ids, tt = torch.tensor(INPUT_IDS), torch.tensor(TOKEN_TYPES)
    mask, labels = torch.tensor(MASK), torch.tensor(LABELS)
    loss, correct = mlm_loss(c, P, ids, tt, mask, labels)
    loss.backward()
    os.makedirs(os.path.join(OUT, "model"), exist_ok=True)
    with open(os.path.join(OUT, "model", "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    stpy.save(os.path.join(OUT, "model", "model.safetensors"), P32, {"format": "pt"})
    exp = {"input_ids": ids.to(torch.int32).numpy(), "token_type_ids": tt.to(torch.int32).numpy(),
           "attention_mask": mask.to(torch.int32).numpy(),
           "labels": labels.to(torch.int32).numpy(),
           "loss": np.array([loss.item()], dtype=np.float32),
           "correct": np.array([correct], dtype=np.int32)}
    for k, v in P.items():
        exp["grad." + k] = v.grad.detach().to(torch.float32).numpy()
    stpy.save(os.path.join(OUT, "expected.safetensors"), exp)
    print("loss %.6f, %d of %d correct" % (loss.item(), correct, int((labels != -100).sum())))


if __name__ == "__main__":
    main()
