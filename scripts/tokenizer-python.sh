#!/bin/sh
# tokenizer-python.sh: prints a Python whose unicodedata has the Unicode version of af-tokenize's
# utf8proc tables (`af-tokenize --version`), so that scripts/tokenizer_ref.py and af-tokenize
# read characters alike: $PYTHON if it matches, else the first python3.x found that does.
# Exit 1 (and a message) when there is none.
set -u
bin=${1:-$(cd "$(dirname "$0")/.." && pwd)/bin/af-tokenize}
unicode=$("$bin" --version | sed -n 's/.*Unicode \([0-9.]*\).*/\1/p')
for cand in ${PYTHON:-} python3 python3.12 python3.13 python3.14 /usr/bin/python3 \
    "$HOME"/.pyenv/versions/*/bin/python3; do
    command -v "$cand" >/dev/null 2>&1 || continue
    v=$("$cand" -c 'import unicodedata; print(unicodedata.unidata_version)' 2>/dev/null) || continue
    if [ "$v" = "$unicode" ]; then
        echo "$cand"
        exit 0
    fi
done
echo "tokenizer-python: no Python with Unicode $unicode tables (af-tokenize's)" >&2
exit 1
