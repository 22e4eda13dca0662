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

# The shipped MNIST subset as HDF5, converted once per build tree.
mnist_h5() {
    local f=$BIN/test-data/mnist.h5
    if [ ! -f "$f" ]; then
        mkdir -p "$BIN/test-data"
        "$DTRAIN" prepare mnist --idx "$SRC/data/mnist" --out "$f.$$" >/dev/null
        mv "$f.$$" "$f"
    fi
    echo "$f"
}

# json_num FILE KEY: the number stored under KEY in a one-object JSON file
json_num() {
    grep -o "\"$2\": [-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: //'
}

# float comparison: ge A B  → true if A >= B
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
