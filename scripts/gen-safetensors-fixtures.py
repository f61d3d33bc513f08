#!/usr/bin/env python3
"""gen-safetensors-fixtures.py: writes the small safetensors files under tests/fixtures/safetensors/.

Plain python3 (struct + json), so it runs anywhere; the files are committed and tests never run
this. Valid files: an af adapter, an af fusion layer, a BERT-like base (F32/F16/BF16 with real
Hugging Face names), a file of other dtypes, an empty file. Invalid files break one rule each.
Usage: scripts/gen-safetensors-fixtures.py [OUTDIR]"""
import json
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "safetensors")


def pack(dtype, values):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    if dtype == "BF16":  # the top half of the float32; the values below are exact in BF16
        return b"".join(struct.pack("<f", v)[2:] for v in values)
    if dtype == "I64":
        return struct.pack("<%dq" % len(values), *values)
    if dtype == "I32":
        return struct.pack("<%di" % len(values), *values)
    if dtype == "U8" or dtype == "BOOL":
        return bytes(values)
    raise ValueError(dtype)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def ramp(n, scale=0.25, offset=-1.0):
    return [offset + scale * i for i in range(n)]


def image(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, values). Returns the bytes of the file."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        raw = pack(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def raw_image(header_text, data=b""):
    h = header_text.encode()
    return struct.pack("<Q", len(h)) + h + data


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def adapter():
    cfg = {"arch": "pfeiffer", "reduction_factor": 2, "non_linearity": "relu", "hidden_size": 4}
    heads = {"sst2": {"labels": ["negative", "positive"]}}
    meta = {"format": "af-adapter/1", "name": "sst2", "config": json.dumps(cfg),
            "heads": json.dumps(heads), "created_by": "gen-safetensors-fixtures.py"}
    t = []
    for layer in range(2):
        p = "bert.encoder.layer.%d.output.adapters.sst2." % layer
        t.append((p + "adapter_down.0.weight", "F32", [2, 4], ramp(8)))
        t.append((p + "adapter_down.0.bias", "F32", [2], [0.0, 0.0]))
        t.append((p + "adapter_up.weight", "F32", [4, 2], ramp(8, 0.125, 0.5)))
        t.append((p + "adapter_up.bias", "F32", [4], [0.0] * 4))
    t.append(("heads.sst2.1.weight", "F32", [4, 4], ramp(16)))
    t.append(("heads.sst2.1.bias", "F32", [4], [0.0] * 4))
    t.append(("heads.sst2.4.weight", "F32", [2, 4], ramp(8)))
    t.append(("heads.sst2.4.bias", "F32", [2], [0.0, 0.0]))
    return image(t, meta)


def fusion():
    meta = {"format": "af-fusion/1", "name": "sst2-fusion",
            "config": json.dumps({"method": "attention", "temperature": 1.0}),
            "adapters": json.dumps([{"name": "a", "sha256": "0" * 64},
                                    {"name": "b", "sha256": "f" * 64}])}
    t = []
    for layer in range(2):
        p = "bert.encoder.layer.%d.output.adapter_fusion_layer.a,b." % layer
        t.append((p + "query.weight", "F32", [4, 4], ramp(16)))
        t.append((p + "query.bias", "F32", [4], [0.0] * 4))
        t.append((p + "key.weight", "F32", [4, 4], ramp(16)))
        t.append((p + "key.bias", "F32", [4], [0.0] * 4))
        t.append((p + "value.weight", "F32", [4, 4],
                  [1.0 if i % 5 == 0 else 1e-6 for i in range(16)]))
    return image(t, meta)


def base():
    """A 1-layer BERT with hidden 4, in the mix of dtypes real checkpoints come in."""
    t = [("bert.embeddings.word_embeddings.weight", "F16", [10, 4], ramp(40, 0.125, -2.0)),
         ("bert.embeddings.position_embeddings.weight", "BF16", [8, 4], ramp(32, 0.5, -8.0)),
         ("bert.embeddings.token_type_embeddings.weight", "F32", [2, 4], ramp(8)),
         ("bert.embeddings.LayerNorm.weight", "F32", [4], [1.0] * 4),
         ("bert.embeddings.LayerNorm.bias", "F32", [4], [0.0] * 4),
         ("bert.embeddings.position_ids", "I64", [1, 8], list(range(8)))]
    p = "bert.encoder.layer.0."
    for name, shape in [("attention.self.query", [4, 4]), ("attention.self.key", [4, 4]),
                        ("attention.self.value", [4, 4]), ("attention.output.dense", [4, 4]),
                        ("intermediate.dense", [8, 4]), ("output.dense", [4, 8])]:
        t.append((p + name + ".weight", "F32", shape, ramp(numel(shape), 0.0625)))
        t.append((p + name + ".bias", "F32", shape[:1], [0.0] * shape[0]))
    for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
        t.append((p + ln + ".weight", "F32", [4], [1.0] * 4))
        t.append((p + ln + ".bias", "F32", [4], [0.0] * 4))
    return image(t, {"format": "pt"})


def other():
    t = [("stats", "F32", [2, 2], [1.0, 2.0, 3.0, 4.0]),
         ("ids", "I64", [3], [7, -1, 1 << 40]),
         ("mask", "BOOL", [4], [1, 0, 1, 1]),
         ("scalar", "F32", [], [2.5]),
         ("empty", "F32", [0, 4], [])]
    return image(t)


def main():
    os.makedirs(OUT, exist_ok=True)
    write("adapter.safetensors", adapter())
    write("fusion.safetensors", fusion())
    write("base.safetensors", base())
    write("other.safetensors", other())
    write("empty.safetensors", image([]))

    one = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    eight = pack("F32", [1.0, 2.0])
    write("bad-short.safetensors", b"\x05\x00\x00")
    write("bad-header-length.safetensors", struct.pack("<Q", 1000) + b"{}")
    write("bad-header-limit.safetensors", struct.pack("<Q", 100000001) + b"{}      ")
    write("bad-utf8.safetensors", struct.pack("<Q", 8) + b'{"\xff":1} ')
    write("bad-json.safetensors", raw_image('{' + one + ',}    ', eight))
    write("bad-dtype.safetensors",
          raw_image('{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}', eight))
    write("bad-meta.safetensors", raw_image('{"__metadata__":{"n":1},' + one + '}', eight))
    write("bad-hole.safetensors",
          raw_image('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight))
    write("bad-overlap.safetensors",
          raw_image('{' + one + ',"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight))
    write("bad-size.safetensors",
          raw_image('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', eight))
    write("bad-trailing.safetensors", raw_image('{' + one + '}', eight + b"\0"))
    write("bad-truncated.safetensors", raw_image('{' + one + '}', eight[:6]))
    write("bad-duplicate.safetensors",
          raw_image('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                    '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight))


if __name__ == "__main__":
    main()
