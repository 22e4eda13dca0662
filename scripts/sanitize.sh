#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer (README "Fuzzing
# and sanitizers"): builds everything into build-asan/ (gcc, -fsanitize=address,undefined,
# no recovery; build/ is untouched) and runs ctest there. The integration tests run the
# binaries of the tree they are registered from (DTRAIN_BINARY_DIR = build-asan), the MPI
# ones under mpirun included.
#   scripts/sanitize.sh                 build, then the whole suite (2 shared cores: about 21 min)
#   scripts/sanitize.sh -R PATTERN ...  build, then only those tests (any ctest arguments)
# Exit status: 0 only when every test passed and no sanitizer reported anything.
#
# A finding fails the run twice over: the sanitizer aborts the process (halt_on_error,
# abort_on_error; UBSan built with -fno-sanitize-recover=all), and its report goes to
# build-asan/sanitizer-logs/ (log_path) rather than stderr, so that a test which expected
# its program to fail cannot pass on a sanitizer's abort: any report left there fails the
# run, and is printed, whatever ctest said.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
# DTRAIN_WERROR=OFF: gcc's warnings change under the sanitizers' instrumentation (false
# maybe-uninitialized and stringop ones); the normal build holds the code to -Werror.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTRAIN_CUDA=OFF -DDTRAIN_WERROR=OFF \
    -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" > build-asan.log 2>&1 ||
    { cat build-asan.log; exit 1; }
cmake --build build-asan -j "$(nproc)" >> build-asan.log 2>&1 || { tail -n 50 build-asan.log; exit 1; }
logs=$root/build-asan/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
common="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$logs/report"
# detect_leaks: a leak is a finding too; tests/sanitize/lsan.supp names the only ones
# allowed, each in a library that is not ours, with why.
# fast_unwind_on_malloc=0: whole stacks through libraries built without frame pointers
# (glibc, Open MPI), so that a leak is attributed to the library it is in
# allocator_may_return_null: an impossible allocation returns NULL as libc's does (and the
# code must handle it: test_kernels_backend checks that it does) instead of ASan's abort
export ASAN_OPTIONS="$common:detect_leaks=1:strict_string_checks=1:fast_unwind_on_malloc=0:allocator_may_return_null=1"
# Open MPI unloads its plug-ins at MPI_Finalize; kept loaded, their frames keep their names
export OMPI_MCA_mca_base_component_disable_dlclose=1
export LSAN_OPTIONS="suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="$common"
# Not run here: the CUDA emulator's tests (label gpu_emu). The emulator runs each CUDA thread
# as a fiber on stacks it switches to by hand (tests/gpu/emu/emu_fiber.cc), which ASan does
# not know about, and it makes device memory fault on a host touch (PROT_NONE or protection
# keys) where tests/gpu/emu/emu_selftest.cc expects the child to die of SIGSEGV, which ASan's
# SEGV handler turns into a report. Under these flags UBSan also reports a null `dim3` for
# the thread_local blockDim a kernel reads inside a fiber (kernels/cuda/optim.cu:63); not
# investigated further. What those tests check of the CUDA kernels is not covered here; the
# CPU kernels are (test_kernels_*), and so is the trainer's CPU path of the GPU jobs
# (gpu_jobs_cpu_*).
# Nor it_gpt_shards: it holds prepare and training to a 96 MiB memory cgroup, which ASan's
# own overhead (shadow memory, quarantine) exceeds: the kernel kills the process.
rc=0
(cd build-asan && ctest --output-on-failure -j 2 -LE gpu_emu -E "^it_gpt_shards$" "$@") || rc=$?
# a finding is an ERROR (ASan, LSan) or a runtime error (UBSan); warnings (an impossible
# allocation that returned NULL) are not
found=$(grep -l -E "ERROR: |runtime error:" "$logs"/report* 2> /dev/null || true)
if [ -n "$found" ]; then
    echo "sanitize.sh: sanitizer reports (build-asan/sanitizer-logs):" >&2
    for f in $found; do
        echo "==== $f" >&2
        head -n 60 "$f" >&2
    done
    [ $rc -ne 0 ] || rc=1
fi
[ $rc -eq 0 ] && echo "sanitize.sh: every test passed, no sanitizer report"
exit $rc
