#!/usr/bin/env bash
# bench/emu_speed.sh: the CUDA emulator's cost per launch, this tree against the emulator
# of an older commit (default 93f7f3f, the last with one OS thread per CUDA thread), on the
# same kernels (tests/gpu/emu/emu_bench.c, which uses only kernels_cuda.h). A timing
# printout, not a test. Needs build/ (scripts/build.sh), g++ and gcc.
#   bench/emu_speed.sh [old-commit] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:-93f7f3f}
reps=${2:-10}
[ -x build/tests/gpu/emu_bench ] || { echo "emu_speed: build/tests/gpu/emu_bench missing: run scripts/build.sh"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$old" kernels tests/gpu/emu | tar -x -C "$tmp"
[ -f "$tmp/tests/gpu/emu/cuda_emu.cc" ] || { echo "emu_speed: $old has no tests/gpu/emu/cuda_emu.cc (not the threaded emulator)"; exit 2; }
cxx="g++ -std=c++17 -O3 -DNDEBUG -DDTRAIN_CUDA_EMU -D_POSIX_C_SOURCE=200809L -I$tmp/tests/gpu/emu -I$tmp/kernels/cuda -I$tmp/kernels"
for f in "$tmp"/kernels/cuda/*.cu; do $cxx -x c++ -c "$f" -o "$tmp/$(basename "$f" .cu).o" & done
$cxx -c "$tmp/tests/gpu/emu/cuda_emu.cc" -o "$tmp/emu.o"
wait
gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O3 -I"$tmp/kernels" -c tests/gpu/emu/emu_bench.c -o "$tmp/bench.o"
g++ -o "$tmp/emu_bench_old" "$tmp"/*.o -lpthread
echo "== emulator of $old (one OS thread per CUDA thread), $reps repeats"
"$tmp/emu_bench_old" "$reps"
echo "== this tree (fibers; device memory behind a protection key where the CPU has PKU)"
build/tests/gpu/emu_bench "$reps"
echo "== this tree with mprotect instead (DTRAIN_EMU_NO_PKEYS=1)"
DTRAIN_EMU_NO_PKEYS=1 build/tests/gpu/emu_bench "$reps"
