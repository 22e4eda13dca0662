#!/usr/bin/env bash
# replay.sh HARNESS DIR...: runs the harness once on every file under the DIRs (a committed
# corpus and its crash regressions), without fuzzing. Fails if any input crashes it.
set -euo pipefail
harness=$1
shift
files=()
for d in "$@"; do
    [ -d "$d" ] || continue
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f ! -name 'README*' -print0 | sort -z)
done
if [ ${#files[@]} -eq 0 ]; then
    echo "replay.sh: no inputs under $*" >&2
    exit 1
fi
# libFuzzer runs each file given by name once and exits non-zero at the first crash
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "$harness" -timeout=20 -rss_limit_mb=2048 "${files[@]}" > "$log" 2>&1; then
    echo "replay.sh: ${#files[@]} inputs ran clean"
else
    rc=$?
    grep -v '^Executed ' "$log" | tail -n 80
    echo "replay.sh: $(basename "$harness") crashed on $(grep '^Running: ' "$log" | tail -n 1 | cut -d' ' -f2-)" >&2
    exit "$rc"
fi
