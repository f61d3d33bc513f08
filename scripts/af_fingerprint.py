#!/usr/bin/env python3
"""af_fingerprint.py DIR: a base's fingerprint as lib/bert.c's bert_fingerprint computes it (the
fixture scripts record it in the files they write; the shell tests check af's against it).

sha256 over a text of the config's computation keys (defaults as BertConfig's) and the size of
model.safetensors, followed by the sha256 (hex, one per line) of each 64 MiB chunk of that file.
Standard library only: CI runs the shell tests without numpy or torch."""
import hashlib
import json
import os
import struct
import sys

_ACT = {"gelu_pytorch_tanh": "gelu_new", "gelu_fast": "gelu_new", "silu": "swish"}


# DistilBertConfig's keys and defaults, under BertConfig's names (its LayerNorm eps is fixed)
_DISTIL = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
           "hidden_dim": "intermediate_size", "activation": "hidden_act"}


def fingerprint(base_dir):
    with open(os.path.join(base_dir, "config.json")) as f:
        c = json.load(f)
    mt = c.get("model_type", "bert")
    if mt == "roberta":
        c = dict({"pad_token_id": 1}, **c)
    elif mt == "distilbert":
        c = {_DISTIL.get(k, k): v for k, v in c.items()}
        c = dict(c, num_hidden_layers=c.get("num_hidden_layers", 6), type_vocab_size=0,
                 layer_norm_eps=1e-12)
    act = c.get("hidden_act", "gelu")
    eps = struct.unpack("<f", struct.pack("<f", c.get("layer_norm_eps", 1e-12)))[0]  # a float32
    path = os.path.join(base_dir, "model.safetensors")
    head = ("af-base/2\nvocab_size %d\nhidden_size %d\nnum_hidden_layers %d\n"
            "num_attention_heads %d\nintermediate_size %d\nhidden_act %s\n"
            "max_position_embeddings %d\ntype_vocab_size %d\nlayer_norm_eps %.9g\n"
            "pad_token_id %d\nmodel.safetensors %d bytes\n") % (
        c.get("vocab_size", 30522), c.get("hidden_size", 768), c.get("num_hidden_layers", 12),
        c.get("num_attention_heads", 12), c.get("intermediate_size", 3072), _ACT.get(act, act),
        c.get("max_position_embeddings", 512), c.get("type_vocab_size", 2), eps,
        c.get("pad_token_id", 0), os.path.getsize(path))
    if mt != "bert":  # the architecture, for all but BERT (whose fingerprints predate the others)
        head += "model_type %s\n" % mt
    h = hashlib.sha256(head.encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(64 << 20), b""):
            h.update(hashlib.sha256(chunk).hexdigest().encode() + b"\n")
    return h.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: af_fingerprint.py BASE_DIR")
    print(fingerprint(sys.argv[1]))
