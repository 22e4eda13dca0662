#!/usr/bin/env bash
# Bad input: one-line errors that name the key or file and what was expected, non-zero exit,
# and no partial output left behind.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)

expect_error() { # EXPECTED_TEXT CMD...
    local want=$1; shift
    if "$@" > "$TMP/out" 2> "$TMP/err"; then fail "should have failed: $*"; fi
    grep -q -- "$want" "$TMP/err" || { cat "$TMP/err"; fail "error for '$*' lacks '$want'"; }
    [ "$(grep -c 'dtrain' "$TMP/err")" -ge 1 ] || fail "no dtrain error line"
    ok "$(head -n 1 "$TMP/err")"
}

expect_error "unknown config key 'lrr'" "$DTRAIN" classify --data "$DATA" --lrr 0.1 --out "$TMP/x"
expect_error "bad value 'fast' for key 'lr': expected a number" "$DTRAIN" classify --lr fast --out "$TMP/x"
expect_error "bad value 'resnet' for key 'model': expected one of lenet|mlp" "$DTRAIN" classify --model resnet
expect_error "bad value '0' for key 'epochs'" "$DTRAIN" classify --epochs 0
printf 'model = lenet\nbatch_size = lots\n' > "$TMP/bad.conf"
expect_error "bad.conf:2: bad value 'lots' for key 'batch_size'" "$DTRAIN" classify --config "$TMP/bad.conf"
expect_error "nosuch.h5" "$DTRAIN" classify --data "$TMP/nosuch.h5" --out "$TMP/x"
expect_error "multiple of the number of ranks" "${MPIRUN[@]}" -np 2 "$DTRAIN" classify --data "$DATA" --batch_size 63 --out "$TMP/x"
expect_error "unknown command 'clasify'" "$DTRAIN" clasify

# a truncated idx file: the error names it, and no HDF5 file (or temporary) is left behind
mkdir -p "$TMP/idx"
cp "$SRC"/data/mnist/*.gz "$TMP/idx/"
{ zcat "$SRC/data/mnist/train-images-idx3-ubyte.gz" || true; } | head -c 100000 > "$TMP/idx/train-images-idx3-ubyte"
rm "$TMP/idx/train-images-idx3-ubyte.gz"
expect_error "train-images-idx3-ubyte" "$DTRAIN" prepare mnist --idx "$TMP/idx" --out "$TMP/out.h5"
ls "$TMP" | grep -q "out.h5" && fail "a partial output file was left behind"
ok "no partial output after a failed prepare"

# an HDF5 file without the datasets the job needs (only /test copied over)
"$DTRAIN" prepare mnist --idx "$SRC/data/mnist" --out "$TMP/good.h5" > /dev/null
h5copy -i "$TMP/good.h5" -o "$TMP/partial.h5" -s /test -d /test
expect_error "/train/images" "$DTRAIN" classify --data "$TMP/partial.h5" --out "$TMP/x"
