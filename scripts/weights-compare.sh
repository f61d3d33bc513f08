#!/bin/sh
# weights-compare.sh DEV.jsonl AF-INFER-ARGS...: what holding the base's weights in another type
# costs: af-infer over DEV (tokenized, with gold labels) with --weights f32, f16 and bf16, and
# for each the accuracy and the largest difference of any probability from the f32 run.
#   scripts/weights-compare.sh build/demo/out/fortune.dev.jsonl --base build/demo/base \
#       --adapter build/demo/out/adapter-domain.safetensors ... --fusion F.safetensors
# Environment: AF_BIN (programs; default bin/).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${AF_BIN:-$top/bin}
[ $# -ge 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dev=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in f32 f16 bf16; do
    "$bin/af-infer" -q "$@" --weights "$w" --metrics-json "$tmp/$w.json" "$dev" >"$tmp/$w.jsonl"
done
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
def load(w):
    return [json.loads(l) for l in open(f"{d}/{w}.jsonl")]
ref = load("f32")
print("weights\taccuracy\tmax |dp| vs f32\tpredictions changed")
for w in ("f32", "f16", "bf16"):
    m = json.load(open(f"{d}/{w}.json"))
    acc = next(iter(m["tasks"].values()))["accuracy"]
    rows = load(w)
    dp = max(abs(a - b) for x, y in zip(ref, rows) for a, b in zip(x["probs"], y["probs"]))
    ch = sum(x["label"] != y["label"] for x, y in zip(ref, rows))
    print(f"{w}\t{acc:.4f}\t{dp:.2e}\t{ch} of {len(rows)}")
PY
