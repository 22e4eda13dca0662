#!/usr/bin/env bash
# smoke.sh HARNESS SECONDS CORPUS OUTDIR: fuzzes for SECONDS from the committed CORPUS (read
# only: new inputs go to OUTDIR/corpus, a crash's input to OUTDIR/crash-*). Fails on a crash,
# a leak, a timeout (an input running past 10 s) or running out of memory (2 GiB).
set -euo pipefail
harness=$1 seconds=$2 corpus=$3 out=$4
mkdir -p "$out/corpus"
log="$out/fuzz.log"
if "$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/" "$out/corpus" "$corpus" > "$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" | tr '\n' ' '
    echo
else
    rc=$?
    tail -n 60 "$log"
    echo "smoke.sh: $(basename "$harness") failed (exit $rc); the input is in $out (crash-*, leak-*, timeout-*, oom-*)" >&2
    exit "$rc"
fi
