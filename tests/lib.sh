# Shared helpers for the integration tests (tests/it_*.sh); sourced, not run.
set -euo pipefail
SRC=${DTRAIN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BIN=${DTRAIN_BINARY_DIR:-$SRC/build}
DTRAIN=$BIN/dtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# prepared_h5 NAME PREPARE_ARGS...: $BIN/test-data/NAME, made once per build tree by
# `dtrain prepare PREPARE_ARGS... --out` (written aside, then renamed); prints its path
prepared_h5() {
    local f=$BIN/test-data/$1
    shift
    if [ ! -f "$f" ]; then
        mkdir -p "$BIN/test-data"
        "$DTRAIN" prepare "$@" --out "$f.$$" > /dev/null
        mv "$f.$$" "$f"
    fi
    echo "$f"
}
# The shipped MNIST subset as HDF5; the shipped Shakespeare as character tokens.
mnist_h5() { prepared_h5 mnist.h5 mnist --idx "$SRC/data/mnist"; }
shakespeare_h5() { prepared_h5 tinyshakespeare.h5 text --in "$SRC/data/tinyshakespeare.txt"; }

# json_num FILE KEY: the number stored under KEY in a one-object JSON file
json_num() {
    grep -o "\"$2\": [-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: //'
}

# float comparison: ge A B  → true if A >= B
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# same_state A.h5 B.h5: parameters and optimizer state identical to the bit
same_state() {
    local g
    for g in $(h5ls "$1" | awk '$2 == "Group" { print $1 }'); do
        h5diff -q "$1" "$2" "/$g" "/$g" || { echo "/$g differs between $1 and $2" >&2; return 1; }
    done
}

# losses A B: metrics.jsonl files equal once timing fields are removed
same_losses() {
    local strip='s/"([a-z]+_per_s|epoch_time_s|ms_per_step)": [^,}]*(, )?//g'
    diff <(sed -E "$strip" "$1") <(sed -E "$strip" "$2") > /dev/null
}

# wait_for FILE PATTERN SECONDS: until FILE contains PATTERN
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2> /dev/null && return 0
        sleep 0.1
    done
    return 1
}

# can_mount: whether this machine lets us mount a small tmpfs (root in a container may not)
can_mount() {
    mkdir -p "$TMP/probe" && mount -t tmpfs -o size=64k tmpfs "$TMP/probe" 2> /dev/null && umount "$TMP/probe"
}

# expect_error EXPECTED_TEXT CMD...: CMD fails, and its stderr holds EXPECTED_TEXT on a dtrain line
expect_error() {
    local want=$1; shift
    if "$@" > "$TMP/out" 2> "$TMP/err"; then fail "should have failed: $*"; fi
    grep -q -- "$want" "$TMP/err" || { cat "$TMP/err"; fail "error for '$*' lacks '$want'"; }
    [ "$(grep -c 'dtrain' "$TMP/err")" -ge 1 ] || fail "no dtrain error line"
    ok "$(head -n 1 "$TMP/err")"
}
