#!/usr/bin/env bash
# The libFuzzer harnesses of tests/fuzz (README "Fuzzing and sanitizers"): builds them with
# clang into build-fuzz/ (-DDTRAIN_FUZZ=ON: ASan + UBSan + libFuzzer; build/ is untouched),
# then runs them.
#   scripts/fuzz.sh                    CI's check: every committed input replayed (the crash
#                                      regressions among them), and each harness fuzzed for
#                                      8 s from its corpus
#   scripts/fuzz.sh SECONDS [NAME...]  fuzzes each harness (or those named) for SECONDS, one
#                                      after the other; new inputs go to
#                                      build-fuzz/fuzz-out/NAME/corpus, a crash's input to
#                                      build-fuzz/fuzz-out/NAME/crash-*
# Exit status: 0 when nothing crashed, else the failing harness's (or ctest's).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESSES=(idx config utf8 bpe image_shard token_file ckpt)
if [ ! -f build-fuzz/CMakeCache.txt ]; then
    CC=${FUZZ_CC:-clang-14} cmake -S . -B build-fuzz -DDTRAIN_FUZZ=ON -DDTRAIN_TESTS=OFF -DDTRAIN_CUDA=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
fi
# only the harnesses and what they link (not the CLI, the report or the benchmarks)
cmake --build build-fuzz -j "$(nproc)" --target "${HARNESSES[@]/#/fuzz_}" >> build-fuzz.log 2>&1 ||
    { tail -n 50 build-fuzz.log; exit 1; }
if [ $# -eq 0 ]; then
    cd build-fuzz
    exec ctest -L fuzz --output-on-failure -j "$(nproc)"
fi
seconds=$1
shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${HARNESSES[@]}")
for name in "${names[@]}"; do
    echo "fuzz_$name: $seconds s"
    bash tests/fuzz/smoke.sh "build-fuzz/tests/fuzz/fuzz_$name" "$seconds" "tests/fuzz/corpus/$name" \
        "build-fuzz/fuzz-out/$name"
done
