#!/usr/bin/env bash
# A corpus larger than memory: `prepare text` streams 100 copies of the shipped corpus
# (111.5 MB) from standard input into a BPE token directory inside a memory cgroup limited
# to 96 MiB above what dtrain holds once started (a build with CUDA maps cuBLAS and NCCL:
# ~170 MB before main; the in-memory .h5 path is killed under the same limit: the limit
# bites); then
# GPT trains from the shards on 2 ranks under the same limit, and a run stopped at step 10
# and resumed equals the straight run to the bit.
source "$(dirname "$0")/lib.sh"
TXT=$SRC/data/tinyshakespeare.txt
COPIES=100
export OPENBLAS_NUM_THREADS=1

# dtrain's resident memory once started, in bytes: it waits to open a FIFO no one writes
start_rss() {
    local fifo=$TMP/start.fifo pid rss=
    mkfifo "$fifo"
    "$DTRAIN" prepare text --in "$fifo" --out "$TMP/start.h5" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [ "$(cat /proc/$pid/wchan 2> /dev/null)" = wait_for_partner ] && break
        sleep 0.1
    done
    rss=$(awk '/^VmRSS:/ {print $2 * 1024}' /proc/$pid/status)
    : > "$fifo" # its partner: dtrain reads an empty file and exits
    wait $pid 2> /dev/null || true
    rm -f "$fifo" "$TMP/start.h5"
    echo "${rss:-0}"
}
HEADROOM=$((96 << 20))
LIMIT=$(( $(start_rss) + HEADROOM ))

# A fresh memory cgroup (v1 or v2) for this test, removed on exit.
CG=
make_cgroup() {
    local name=dtrain-test-$$
    if [ -d /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/$name" 2> /dev/null; then
        CG=/sys/fs/cgroup/memory/$name
        echo $LIMIT > "$CG/memory.limit_in_bytes"
    elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2> /dev/null && mkdir "/sys/fs/cgroup/$name" 2> /dev/null; then
        CG=/sys/fs/cgroup/$name
        echo $LIMIT > "$CG/memory.max"
        echo 0 > "$CG/memory.swap.max" 2> /dev/null || true
    else
        fail "cannot create a memory cgroup (as root, cgroup v1 or v2 with the memory controller)"
    fi
    trap 'rm -rf "$TMP"; rmdir "$CG" 2> /dev/null || true' EXIT
}
# limited CMD...: CMD inside the cgroup
limited() { (echo $BASHPID > "$CG/cgroup.procs" && exec "$@"); }

make_cgroup
grep -q "^0$" /proc/swaps 2> /dev/null || [ "$(wc -l < /proc/swaps)" -le 1 ] ||
    echo "note: swap is on; the cgroup limit may push pages to swap rather than fail"

"$DTRAIN" prepare bpe --in "$TXT" --vocab-size 1000 --out "$TMP/bpe" > /dev/null
corpus() { local i; for ((i = 0; i < COPIES; i++)); do cat "$TXT"; done; }
bytes=$(( $(wc -c < "$TXT") * COPIES ))
[ $bytes -gt $HEADROOM ] || fail "test setup: corpus $bytes bytes is not larger than the headroom $HEADROOM"

# the negative control: holding the whole corpus in memory does not fit
corpus > "$TMP/corpus.txt"
rc=0
limited "$DTRAIN" prepare text --in "$TMP/corpus.txt" --tokenizer bpe --bpe "$TMP/bpe" --out "$TMP/whole.h5" \
    > /dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "the in-memory path fitted in $LIMIT bytes: the limit does not bite"
rm -f "$TMP/corpus.txt"

corpus | limited "$DTRAIN" prepare text --in - --tokenizer bpe --bpe "$TMP/bpe" --out "$TMP/data" \
    --shard-tokens 4000000 > "$TMP/log" || fail "streaming prepare failed under the limit: $(tail -n 3 "$TMP/log")"
shards=$(ls "$TMP/data" | grep -c '^shard-')
[ "$shards" -ge 8 ] || fail "expected at least 8 shards, got $shards"
ok "prepared $bytes bytes into $shards shards under a $LIMIT-byte memory limit: $(tail -n 2 "$TMP/log" | head -n 1)"

run=(--data "$TMP/data" --n_layer 2 --n_head 2 --n_embd 64 --block_size 64 --batch_size 8 --max_steps 20
     --warmup_steps 2 --eval_interval 10 --eval_iters 2 --log_interval 5 --ckpt_interval 10 --threads 1)
limited "${MPIRUN[@]}" -np 2 "$DTRAIN" gpt "${run[@]}" --out "$TMP/a" > "$TMP/log" ||
    fail "training on the shards under the limit failed: $(tail -n 3 "$TMP/log")"
loss=$(json_num "$TMP/a/summary.json" val_loss)
ge 6.5 "$loss" || fail "val_loss $loss after 20 steps (ln 1000 = 6.9 at init)"
rc=0
DTRAIN_TEST_STOP_AT_STEP=10 limited "${MPIRUN[@]}" -np 2 "$DTRAIN" gpt "${run[@]}" --out "$TMP/b" > /dev/null 2>&1 || rc=$?
[ $rc -eq 75 ] || fail "stop should exit 75, got $rc"
limited "${MPIRUN[@]}" -np 2 "$DTRAIN" gpt "${run[@]}" --out "$TMP/b" --resume auto > /dev/null
same_state "$TMP/a/checkpoints/ckpt-00000020.h5" "$TMP/b/checkpoints/ckpt-00000020.h5" ||
    fail "the resumed run differs from the straight run"
same_losses "$TMP/a/metrics.jsonl" "$TMP/b/metrics.jsonl" || fail "the resumed run logged other losses"
ok "2 ranks trained from the shards under the limit (val_loss $loss); stop at 10 + resume == straight, to the bit"
