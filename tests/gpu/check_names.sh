#!/usr/bin/env bash
# check_names.sh KERNELS_H NAMES_H: every function kernels.h declares has its cuda_ mapping
# in names.h (both the #define and the #undef half), and names.h maps nothing else. A
# missing mapping would declare the CPU name twice and leave the CUDA op unprefixed.
set -euo pipefail
kernels_h=$1 names_h=$2
declared=$(grep -oE '^[a-z_0-9 ]+[ *]([a-z0-9_]+)\(' "$kernels_h" | sed -E 's/.*[ *]([a-z0-9_]+)\($/\1/' | sort -u)
defined=$(grep -oE '^#define [a-z0-9_]+ cuda_[a-z0-9_]+$' "$names_h" | awk '$3 == "cuda_" $2 {print $2}' | sort -u)
undefined=$(grep -oE '^#undef [a-z0-9_]+$' "$names_h" | awk '{print $2}' | sort -u)
status=0
if [ -z "$declared" ]; then echo "FAIL: no function found in $kernels_h"; exit 1; fi
if ! diff <(echo "$declared") <(echo "$defined") >/dev/null; then
    echo "FAIL: kernels.h declarations (<) and names.h #defines (>) differ:"
    diff <(echo "$declared") <(echo "$defined") || true
    status=1
fi
if ! diff <(echo "$declared") <(echo "$undefined") >/dev/null; then
    echo "FAIL: kernels.h declarations (<) and names.h #undefs (>) differ:"
    diff <(echo "$declared") <(echo "$undefined") || true
    status=1
fi
n=$(echo "$declared" | wc -l)
if [ $status = 0 ]; then echo "ok   names.h maps all $n functions of kernels.h"; echo "1 passed, 0 failed"
else echo "0 passed, 1 failed"; fi
exit $status
