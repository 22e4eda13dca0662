#!/usr/bin/env bash
# Makes BUILD/venv-tokenizers: a Python venv with the Hugging Face `tokenizers` package
# (PyPI), the reference of the BPE exactness test (tests/it_bpe.sh) and of the encoding
# benchmark (bench/bench_bpe.sh). Quick when it exists; pip's downloads are cached in
# BUILD/pip-cache. Exits non-zero (the test then fails) when PyPI cannot be reached.
#   scripts/tokenizers-venv.sh [BUILD_DIR]     prints the venv's python
set -euo pipefail
BUILD=$(cd "${1:-$(dirname "$0")/../build}" && pwd)
VENV=$BUILD/venv-tokenizers
VERSION=0.23.3
if [ ! -f "$VENV/.complete" ]; then
    rm -rf "$VENV"
    PY=/usr/bin/python3
    [ -x "$PY" ] || PY=python3
    "$PY" -m venv "$VENV" >&2
    PIP_CACHE_DIR=$BUILD/pip-cache "$VENV/bin/pip" install -q --disable-pip-version-check "tokenizers==$VERSION" >&2
    "$VENV/bin/python" -c "import tokenizers" >&2
    touch "$VENV/.complete"
fi
echo "$VENV/bin/python"
