"""stpy.py: a minimal safetensors reader/writer for the fixture scripts (numpy/torch tensors).

Debian's python3-torch 1.13 has no safetensors module, and the fixture scripts must not depend on
PyPI, so this implements the format directly: u64 LE header length, JSON header padded with spaces
to a multiple of 8, contiguous little-endian data."""
import json
import struct

import numpy as np

_DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
       "F64": np.float64}
_NP = {np.dtype(v): k for k, v in _DT.items()}


def _np(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(t)


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array or torch tensor (written in insertion order)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        a = _np(t)
        if a.dtype == np.dtype("bfloat16") if hasattr(np, "bfloat16") else False:
            raise ValueError("bf16 via save_raw")
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NP[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_raw(path, entries, metadata=None):
    """entries: list of (name, dtype string, shape, raw bytes), for BF16 or odd layouts."""
    header, off = {}, 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for e in entries:
            f.write(e[3])


def load(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, d in header.items():
        b, e = d["data_offsets"]
        raw = data[base + b:base + e]
        if d["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = u.view(np.float32).reshape(d["shape"])
        else:
            out[name] = np.frombuffer(raw, dtype=_DT[d["dtype"]]).reshape(d["shape"])
    return out, meta

