#!/usr/bin/env bash
# check_names.sh KERNELS_H NAMES_H...: every function kernels.h declares has its prefixed
# mapping in each names.h (kernels/cpu/names.h: cpu_, kernels/cuda/names.h: cuda_; the prefix
# is the name of the file's folder), both the #define and the #undef half, and names.h maps
# nothing else. A missing mapping would leave a backend's op unprefixed: two definitions of
# one name, or a dispatch (kernels/dispatch.c) that calls itself.
set -euo pipefail
kernels_h=$1
shift
declared=$(grep -oE '^[a-z_0-9 ]+[ *]([a-z0-9_]+)\(' "$kernels_h" | sed -E 's/.*[ *]([a-z0-9_]+)\($/\1/' | sort -u)
if [ -z "$declared" ]; then echo "FAIL: no function found in $kernels_h"; exit 1; fi
n=$(echo "$declared" | wc -l)
passed=0 failed=0
for names_h in "$@"; do
    prefix=$(basename "$(dirname "$names_h")")
    defined=$(grep -oE "^#define [a-z0-9_]+ ${prefix}_[a-z0-9_]+\$" "$names_h" |
              awk -v p="${prefix}_" '$3 == p $2 {print $2}' | sort -u)
    undefined=$(grep -oE '^#undef [a-z0-9_]+$' "$names_h" | awk '{print $2}' | sort -u)
    status=0
    if ! diff <(echo "$declared") <(echo "$defined") >/dev/null; then
        echo "FAIL: kernels.h declarations (<) and $names_h #defines (>) differ:"
        diff <(echo "$declared") <(echo "$defined") || true
        status=1
    fi
    if ! diff <(echo "$declared") <(echo "$undefined") >/dev/null; then
        echo "FAIL: kernels.h declarations (<) and $names_h #undefs (>) differ:"
        diff <(echo "$declared") <(echo "$undefined") || true
        status=1
    fi
    if [ $status = 0 ]; then
        echo "ok   $names_h maps all $n functions of kernels.h to ${prefix}_"
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
