#!/bin/sh
# ort-setup.sh: ONNX Runtime, the inference peer of `make bench`, in build/ort (git-ignored).
# Installs npm's onnxruntime-node (CPU binaries only: its install script would fetch GPU ones
# from nuget.org, which a machine without that network cannot reach) and exports the PyTorch
# peer's models with ../shared/peer/ort/export.py (Debian's python3-torch; about a minute,
# checked against PyTorch to 1e-4). Needs the npm registry once; nothing after.
#   scripts/ort-setup.sh [--models "mini base"]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
shared=${AF_SHARED:-$top/../shared}
ort=${AF_ORT:-$top/build/ort}
models="mini base"
[ "${1:-}" = --models ] && models=$2
command -v node >/dev/null 2>&1 || { echo "ort-setup.sh: node is not installed" >&2; exit 1; }
[ -f "$shared/peer/ort/export.py" ] || { echo "ort-setup.sh: no $shared/peer/ort" >&2; exit 1; }
mkdir -p "$ort"
if [ ! -d "$ort/node_modules/onnxruntime-node" ]; then
    npm install --prefix "$ort" --no-save --onnxruntime-node-install=skip onnxruntime-node@1.30.0
fi
NODE_PATH=$ort/node_modules /usr/bin/python3 "$shared/peer/ort/export.py" --out "$ort/models" \
    --models $models
