#!/usr/bin/env bash
# Checkpoint write/read throughput against plain write(2)+fsync / read(2) of the same bytes
# in the same directory, measured in one run (see bench/bench_checkpoint.c).
#
#   bench/bench_checkpoint.sh [BUILD_DIR=build] [DIR=/tmp] [MILLION_PARAMS=100] [REPEATS=3]
#
# Needs ~2.5 GB of memory and ~2.5 GB free in DIR. Run as root to drop the page cache
# before each read (the output says whether it was dropped).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DIR=${2:-/tmp}
MPARAMS=${3:-100}
REPEATS=${4:-3}
if [ ! -x "$BUILD/bench_checkpoint" ]; then
    [ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$BUILD" --target bench_checkpoint -j "$(nproc)" > /dev/null
fi
"$BUILD/bench_checkpoint" "$DIR" "$MPARAMS" "$REPEATS"
