#!/usr/bin/env bash
# Byte-level BPE encoding speed, one core: dtrain (bench_bpe_encode) against the Hugging
# Face tokenizers package (PyPI, the venv of scripts/tokenizers-venv.sh) on the same files
# with the same vocabulary, in the same run. Files: the shipped corpus and generated mixed
# text (tests/bpe_reference.py cases). Vocabulary: 2000 tokens learned by dtrain prepare bpe
# from the corpus, and (with --vocab N) another size. Prints MB/s (CPU time) and the ratio
# against the package's faster way.
#   bench/bench_bpe.sh [--vocab 2000]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DTRAIN_BINARY_DIR:-$SRC/build}
VOCAB=2000
[ "${1:-}" = --vocab ] && VOCAB=$2
PY=$("$SRC/scripts/tokenizers-venv.sh" "$BIN")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TXT=$SRC/data/tinyshakespeare.txt
"$BIN/dtrain" prepare bpe --in "$TXT" --vocab-size "$VOCAB" --out "$TMP/bpe" > /dev/null
"$PY" "$SRC/tests/bpe_reference.py" cases "$TMP/cases"
cat "$TMP"/cases/case-random-*.txt > "$TMP/mixed.txt"
files=("$TXT" "$TMP/mixed.txt")
"$BIN/bench_bpe_encode" "$TMP/bpe" "${files[@]}" > "$TMP/ours"
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$PY" "$SRC/bench/tokenizers_encode.py" "$TMP/bpe" "${files[@]}" \
    > "$TMP/theirs"
echo "vocabulary: $VOCAB tokens (dtrain prepare bpe on tinyshakespeare); one core, CPU time, best of 3"
printf "%-18s %10s %10s %12s %12s %12s %8s\n" file bytes ids dtrain_MB/s tok_whole tok_lines ratio
while read -r path bytes ids _ mbs; do
    name=$(basename "$path")
    whole=$(awk -v p="$path" '$1 == p && $6 == "whole" { print $5 }' "$TMP/theirs")
    lines=$(awk -v p="$path" '$1 == p && $6 == "lines" { print $5 }' "$TMP/theirs")
    tids=$(awk -v p="$path" '$1 == p && $6 == "whole" { print $3 }' "$TMP/theirs")
    [ "$tids" = "$ids" ] || echo "WARNING: $name: $ids ids here, $tids from tokenizers"
    ratio=$(awk -v a="$mbs" -v b="$whole" -v c="$lines" 'BEGIN { m = b > c ? b : c; printf "%.2f", a / m }')
    printf "%-18s %10s %10s %12s %12s %12s %7sx\n" "$name" "$bytes" "$ids" "$mbs" "$whole" "$lines" "$ratio"
done < "$TMP/ours"
