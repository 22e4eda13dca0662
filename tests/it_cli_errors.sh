#!/usr/bin/env bash
# Bad input: one-line errors that name the key or file and what was expected, non-zero exit,
# and no partial output left behind.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)

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

# ---- prepare: exit codes, help, whole gzip streams, checksums, interruption -------------

expect_status() { # STATUS EXPECTED_TEXT CMD...: like expect_error, and the exit code must be STATUS
    local want_status=$1 want=$2 status=0; shift 2
    "$@" > "$TMP/out" 2> "$TMP/err" || status=$?
    [ "$status" -eq "$want_status" ] || { cat "$TMP/err"; fail "exit $status, expected $want_status: $*"; }
    grep -q -- "$want" "$TMP/err" || { cat "$TMP/err"; fail "error for '$*' lacks '$want'"; }
    [ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "more than one error line: $*"; }
    ok "exit $status: $(head -n 1 "$TMP/err")"
}

for kind in mnist text; do
    "$DTRAIN" prepare $kind --help > "$TMP/out" 2> "$TMP/err" || fail "prepare $kind --help exited $?"
    [ -s "$TMP/err" ] && { cat "$TMP/err"; fail "prepare $kind --help wrote to stderr"; }
    grep -q "^usage: dtrain prepare $kind" "$TMP/out" || fail "prepare $kind --help printed no usage"
    grep -q -- "--out" "$TMP/out" || fail "prepare $kind --help does not describe --out"
    ok "prepare $kind --help"
done

# bad input data exits 2 (README's exit-code table); a failure to write the output exits 1
mkdir -p "$TMP/gzcut"
cp "$SRC"/data/mnist/*.gz "$TMP/gzcut/"
f=$TMP/gzcut/t10k-labels-idx1-ubyte.gz
head -c $(($(stat -c %s "$f") - 4)) "$SRC/data/mnist/t10k-labels-idx1-ubyte.gz" > "$f" # half the trailer gone
expect_status 2 "$f: truncated gzip stream (missing CRC trailer)" \
    "$DTRAIN" prepare mnist --idx "$TMP/gzcut" --out "$TMP/cut.h5"
ls "$TMP" | grep -q "cut.h5" && fail "output left behind after a truncated gzip stream"
{ cat "$SRC/data/mnist/t10k-labels-idx1-ubyte.gz"; printf 'garbage'; } > "$f"
expect_status 2 "$f: trailing data after the end of the gzip stream" \
    "$DTRAIN" prepare mnist --idx "$TMP/gzcut" --out "$TMP/cut.h5"
cp "$SRC/data/mnist/t10k-labels-idx1-ubyte.gz" "$f"
expect_status 1 "$TMP/nodir/x.h5" "$DTRAIN" prepare mnist --idx "$TMP/gzcut" --out "$TMP/nodir/x.h5"
printf 'caf\xe9\n' > "$TMP/latin1.txt"
expect_status 2 "$TMP/latin1.txt: invalid UTF-8 at byte offset 3" \
    "$DTRAIN" prepare text --in "$TMP/latin1.txt" --out "$TMP/t.h5"
printf 'hello\n' > "$TMP/ok.txt"
expect_status 1 "$TMP/nodir/t.h5" "$DTRAIN" prepare text --in "$TMP/ok.txt" --out "$TMP/nodir/t.h5"

# a corrupted byte in the pixels of a prepared file: Fletcher32 catches it on read. The middle
# of the file lies in /train/images (written first, 80% of the file), in rank 1's half of it.
# Prepared afresh: $DATA is cached per build tree and may predate the checksums.
"$DTRAIN" prepare mnist --idx "$SRC/data/mnist" --out "$TMP/corrupt.h5" > /dev/null
cp "$TMP/corrupt.h5" "$TMP/intact.h5"
size=$(stat -c %s "$TMP/corrupt.h5")
printf '\x5a' | dd of="$TMP/corrupt.h5" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$TMP/intact.h5" "$TMP/corrupt.h5" && fail "the corruption did not change the file"
status=0
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify --data "$TMP/corrupt.h5" --epochs 1 --out "$TMP/x" > "$TMP/out" 2> "$TMP/err" ||
    status=$?
grep -q "$TMP/corrupt.h5: /train/images: checksum mismatch (file corrupted)" "$TMP/err" ||
    { cat "$TMP/err"; fail "corrupted pixels were not reported"; }
[ "$status" -eq 2 ] || { cat "$TMP/err"; fail "a corrupted data file exited $status, expected 2"; }
ok "corrupted pixels: exit 2, $(grep -m 1 checksum "$TMP/err")"

# An interrupted prepare removes its OUT.tmp.PID, leaves the previous OUT as it was, and dies
# of the signal. The signal goes in as soon as the temporary file appears; a run that wins
# the race and finishes first proves nothing, so it is retried with 4x the input.
be32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
    $(($1 >> 8 & 255)) $(($1 & 255)))"; }
make_idx() { # DIR N: N blank training images, the shipped test split
    mkdir -p "$1"
    cp "$SRC"/data/mnist/t10k-*.gz "$1/"
    { be32 2051; be32 "$2"; be32 28; be32 28; head -c $(($2 * 784)) /dev/zero; } > "$1/train-images-idx3-ubyte"
    { be32 2049; be32 "$2"; head -c "$2" /dev/zero; } > "$1/train-labels-idx1-ubyte"
}
make_text() { # FILE N: N bytes of text
    yes 'the quick brown fox jumps over the lazy dog' | head -c "$2" > "$1" || true
}
interrupt() { # SIGNAL KIND: prepare KIND, interrupted by SIGNAL
    local sig=$1 kind=$2 out=$TMP/kept.h5 n status pid
    cp "$DATA" "$out"
    for n in 60000 180000 540000; do
        rm -rf "$TMP/in"
        if [ "$kind" = mnist ]; then
            make_idx "$TMP/in" "$n"
            "$DTRAIN" prepare mnist --idx "$TMP/in" --out "$out" > /dev/null 2>&1 &
        else
            make_text "$TMP/in" $((n * 200))
            "$DTRAIN" prepare text --in "$TMP/in" --out "$out" > /dev/null 2>&1 &
        fi
        pid=$!
        while kill -0 "$pid" 2> /dev/null && ! compgen -G "$out.tmp.*" > /dev/null; do sleep 0.002; done
        kill -s "$sig" "$pid" 2> /dev/null || true
        status=0
        wait "$pid" || status=$?
        [ "$status" -ne 0 ] && break
        cp "$DATA" "$out" # it finished first: put the previous output back and try a larger input
    done
    rm -rf "$TMP/in"
    [ "$status" -ne 0 ] || fail "prepare $kind finished before SIG$sig every time, even on the largest input"
    [ "$status" -eq $((128 + $(kill -l "$sig"))) ] || fail "prepare $kind exited $status after SIG$sig"
    if compgen -G "$TMP/*.tmp.*" > /dev/null; then ls -la "$TMP"; fail "SIG$sig left $(ls "$TMP" | grep tmp)"; fi
    cmp -s "$DATA" "$out" || fail "SIG$sig changed the previous output"
    rm "$out"
    ok "prepare $kind killed by SIG$sig: exit $status, no temporary file, previous output untouched"
}
interrupt TERM mnist
interrupt HUP text
