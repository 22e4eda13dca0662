#!/usr/bin/env bash
# Hostile and broken checkpoints, crafted for real with h5py (tests/hostile_ckpt.py): each
# is refused on resume with exit 2 and one line naming the file and what is wrong, within
# seconds (a huge dataset declared but never written included), never a crash, a hang or a
# run on garbage. Then a stored config that asks for more memory than any machine has, for
# `dtrain sample`, refused before it is allocated.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's python3 with python3-h5py (a pyenv python3 may come first on PATH)
$PY -c "import h5py" 2> /dev/null || fail "$PY cannot import h5py (scripts/install-deps.sh installs python3-h5py)"
DATA=$(mnist_h5)
run=(classify --data "$DATA" --model mlp --hidden 2 --threads 1)
"$DTRAIN" "${run[@]}" --epochs 1 --ckpt_interval 20 --ckpt_keep 0 --out "$TMP/base" > /dev/null
ck=$TMP/base/checkpoints
mkdir "$TMP/cases"
$PY "$SRC/tests/hostile_ckpt.py" "$ck/ckpt-00000020.h5" "$ck/ckpt-00000125.h5" \
    "$SRC/tests/data/ckpt-v1-classify-mlp.h5" "$TMP/cases"

# expect_refused NAME WANT CMD...: exit 2 in under 20 s, stderr one line holding WANT
expect_refused() {
    local name=$1 want=$2 rc=0 t0
    shift 2
    t0=$(date +%s%N)
    timeout 60 "$@" > "$TMP/out" 2> "$TMP/err" || rc=$?
    local ms=$((($(date +%s%N) - t0) / 1000000))
    [ $rc -eq 2 ] || { cat "$TMP/err"; fail "$name: expected exit 2, got $rc"; }
    [ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "$name: expected one line on stderr"; }
    grep -qF -- "$want" "$TMP/err" || { cat "$TMP/err"; fail "$name: the error lacks '$want'"; }
    [ $ms -lt 20000 ] || fail "$name: took $ms ms"
    ok "$name ($ms ms): $(cut -c1-150 "$TMP/err")"
}

n=0
while IFS=$'\t' read -r name want; do
    args=(--epochs 1)
    # the format-1 file was written by an SGD run of 2 epochs
    case $name in v1_*) args=(--optimizer sgd --lr 0.05 --epochs 2) ;; esac
    expect_refused "$name" "$want" "$DTRAIN" "${run[@]}" "${args[@]}" --out "$TMP/r-$name" \
        --resume "$TMP/cases/$name"
    grep -qF "$TMP/cases/$name" "$TMP/err" || fail "$name: the error does not name the file"
    n=$((n + 1))
done < "$TMP/cases/cases"
[ $n -ge 30 ] || fail "only $n hostile checkpoints were made"
# the originals still resume: the refusals come from the lies, not from the tooling
"$DTRAIN" "${run[@]}" --epochs 1 --out "$TMP/good" --resume "$ck/ckpt-00000020.h5" > "$TMP/log" ||
    fail "the untouched checkpoint does not resume"
ok "$n hostile checkpoints refused; the untouched one resumes"
