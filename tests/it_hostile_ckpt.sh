#!/usr/bin/env bash
# Hostile and broken files, and writes that fail, each for real:
# 1. checkpoints crafted with h5py (tests/hostile_ckpt.py): each is refused on resume with
#    exit 2 and one line naming the file and what is wrong, within seconds (a huge dataset
#    declared but never written included), never a crash, a hang or a run on garbage;
# 2. a stored config that asks for more memory than any machine has, refused by `dtrain
#    sample` before it is allocated;
# 3. config files with a line longer than the parser's limit, or a NUL byte;
# 4. metrics.jsonl and summary.json on a full file system, a sample to a full device: exit 1
#    naming the file, never exit 0, no half line left in metrics.jsonl.
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

# 2. the stored config of a GPT checkpoint asks for a 16,384-token block, 256 layers and 16
#    heads: 4 TiB of attention activations, refused before anything is allocated
head -c 200000 "$SRC/data/tinyshakespeare.txt" > "$TMP/t.txt"
"$DTRAIN" prepare text --in "$TMP/t.txt" --out "$TMP/t.h5" > /dev/null
"$DTRAIN" gpt --data "$TMP/t.h5" --n_layer 1 --n_embd 16 --n_head 2 --block_size 16 --batch_size 4 --max_steps 2 \
    --eval_iters 1 --threads 1 --out "$TMP/g" > /dev/null
gck=$TMP/g/checkpoints/ckpt-00000002.h5
cp "$gck" "$TMP/big.h5"
$PY "$SRC/tests/hostile_ckpt.py" set-config "$TMP/big.h5" block_size=16384 n_layer=256 n_head=16
expect_refused "stored config: 16,384-token block" "$TMP/big.h5: its stored config: the activations would need" \
    "$DTRAIN" sample gpt --ckpt "$TMP/big.h5" --tokens 5

# 3. config files: a line longer than the parser's 4,095 bytes (its tail looks like a
#    setting), a NUL byte inside a line
{ printf '#%.0s' $(seq 4100); printf 'epochs = 9\n'; } > "$TMP/long.conf"
expect_refused "config: long line" "long.conf:1: a line of 4110 bytes, longer than the limit of 4095" \
    "$DTRAIN" "${run[@]}" --config "$TMP/long.conf" --out "$TMP/c1"
printf 'epochs = 1\nlr = 0.5\0 0\n' > "$TMP/nul.conf"
expect_refused "config: NUL byte" "nul.conf:2: a NUL byte at column 9" \
    "$DTRAIN" "${run[@]}" --config "$TMP/nul.conf" --out "$TMP/c2"
[ ! -e "$TMP/c1" ] && [ ! -e "$TMP/c2" ] || fail "a refused config still made a run directory"

# 4. writes that fail. A sample, and an evaluation's line, to a full device:
for cmd in "sample gpt --tokens 20" "eval gpt"; do
    rc=0
    "$DTRAIN" $cmd --ckpt "$gck" > /dev/full 2> "$TMP/err" || rc=$?
    [ $rc -eq 1 ] && grep -q "stdout: cannot write: No space left on device" "$TMP/err" ||
        { cat "$TMP/err"; fail "$cmd > /dev/full: expected exit 1 saying so, got $rc"; }
    ok "$cmd > /dev/full: exit 1, $(cat "$TMP/err")"
done
# metrics.jsonl and summary.json on a small tmpfs (mounting needs root and mount rights)
if ! can_mount; then
    echo "SKIP: full file system cases: this machine does not let the test mount a tmpfs"
    exit 0
fi
mnt=$TMP/mnt
mkdir -p "$mnt"
trap 'umount "$mnt" 2> /dev/null; rm -rf "$TMP"' EXIT
mount -t tmpfs -o size=32k tmpfs "$mnt"
rc=0
"$DTRAIN" "${run[@]}" --epochs 3 --log_interval 1 --out "$mnt/m" --ckpt_dir "$TMP/m-ck" > /dev/null 2> "$TMP/err" || rc=$?
[ $rc -eq 1 ] || { cat "$TMP/err"; fail "metrics on a full disk: expected exit 1, got $rc"; }
grep -q "$mnt/m/metrics.jsonl: cannot write: No space left on device" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"
[ "$(tail -c 1 "$mnt/m/metrics.jsonl" | od -An -c | tr -d ' ')" = '\n' ] || fail "metrics.jsonl ends in a half line"
$PY -c "import json, sys; [json.loads(l) for l in open(sys.argv[1])]" "$mnt/m/metrics.jsonl" ||
    fail "metrics.jsonl holds a line that is not JSON"
[ ! -e "$mnt/m/summary.json" ] || fail "a summary was written after metrics failed"
ok "metrics.jsonl on a full disk: exit 1, $(wc -l < "$mnt/m/metrics.jsonl") whole lines kept, '$(cut -c1-90 "$TMP/err")'"
umount "$mnt"
# tmpfs counts whole 4 KiB pages: the 2 left go to config.txt and metrics.jsonl, none to the summary
mount -t tmpfs -o size=16k tmpfs "$mnt"
mkdir "$mnt/s"
head -c 8192 /dev/zero > "$mnt/s/filler"
rc=0
"$DTRAIN" "${run[@]}" --epochs 1 --out "$mnt/s" --ckpt_dir "$TMP/s-ck" > /dev/null 2> "$TMP/err" || rc=$?
[ $rc -eq 1 ] || { cat "$TMP/err"; fail "summary on a full disk: expected exit 1, got $rc"; }
grep -q "$mnt/s/summary.json.*No space left on device" "$TMP/err" || fail "unclear: $(cat "$TMP/err")"
[ -z "$(ls "$mnt/s" | grep summary)" ] || fail "a partial summary was left"
ok "summary.json on a full disk: exit 1, '$(cut -c1-100 "$TMP/err")'"
