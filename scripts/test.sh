#!/usr/bin/env bash
# Quick start 2: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-slurm
scripts/build.sh
scripts/tokenizers-venv.sh build > /dev/null   # the BPE test's reference (PyPI's tokenizers)
(cd build && ctest --output-on-failure -j 2 "$@")
# the fuzz harnesses (clang, build-fuzz/): every committed input replayed, each fuzzed 8 s
start=$SECONDS
scripts/fuzz.sh
echo "scripts/fuzz.sh: $((SECONDS - start)) s (the clang build, the replays, 8 s of fuzzing per harness)"
