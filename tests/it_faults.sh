#!/usr/bin/env bash
# Faults, each for real: preemption signals, kill -9 inside a checkpoint write, a rank that
# dies, a rank that hangs, a loss that turns NaN, and a checkpoint directory that is full or read-only.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
common=(--data "$DATA" --model lenet --threads 1)
last=ckpt-00000375.h5
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$TMP/straight" > /dev/null

# 1. SIGTERM to every rank (what Slurm sends), then SIGUSR1 to mpirun (which forwards it):
#    the ranks agree on one step, rank 0 checkpoints, exit 75; the resume is bit-exact.
for how in term-ranks usr1-mpirun; do
    dir=$TMP/$how
    "${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" > "$dir.log" 2>&1 &
    pid=$!
    wait_for "$dir.log" "^epoch 1/3" 60 || fail "$how: the run did not get going"
    if [ $how = term-ranks ]; then
        pkill -TERM -P $pid -f "dtrain classify" || true # the ranks, not mpirun
    else
        kill -USR1 $pid
    fi
    rc=0; wait $pid || rc=$?
    [ $rc -eq 75 ] || { cat "$dir.log"; fail "$how: expected exit 75 (preempted), got $rc"; }
    n=$(grep -c "stop requested by a signal" "$dir.log" || true)
    [ "$n" -eq 1 ] || fail "$how: rank 0 should report one stop, got $n"
    [ "$(ls "$dir/checkpoints" | grep -c '\.h5$')" -ge 1 ] || fail "$how: no checkpoint written"
    "${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" --resume auto > "$dir.log2"
    grep -q "resumed from" "$dir.log2" || fail "$how: did not resume"
    same_state "$TMP/straight/checkpoints/$last" "$dir/checkpoints/$last" || fail "$how: resumed run differs"
    ok "$how: $(grep -o 'stop requested.*step [0-9]*' "$dir.log"), exit 75, resumed to the same final state"
done

# 2. kill -9 in the middle of writing a checkpoint: the previous one survives and is used
dir=$TMP/crash
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 1 --out "$dir" > /dev/null
rc=0
DTRAIN_TEST_CRASH_IN_CHECKPOINT=1 "${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" \
    --resume auto > "$dir.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "the crash hook did not kill the run"
grep -q "ckpt-00000125.h5" "$dir/checkpoints/latest" || fail "latest no longer names the previous checkpoint"
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" --resume auto > "$dir.log2"
grep -q "resumed from .*ckpt-00000125.h5" "$dir.log2" || fail "did not resume from the previous checkpoint"
same_state "$TMP/straight/checkpoints/$last" "$dir/checkpoints/$last" || fail "run after the crash differs"
ok "kill -9 inside a checkpoint write (rc $rc): resumed from step 125, same final state"

# 3. a rank dies: the job comes down within a bounded time, naming the rank; then resumes
dir=$TMP/rankdeath
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" > "$dir.log" 2>&1 &
pid=$!
wait_for "$dir.log" "^epoch 1/3" 60 || fail "rank death: the run did not get going"
victim=$(pgrep -P $pid -f "dtrain classify" | tail -n 1)
t0=$(date +%s)
kill -9 "$victim"
rc=0
for _ in $(seq 300); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
kill -0 $pid 2> /dev/null && fail "the job still runs 30 s after a rank died"
wait $pid || rc=$?
[ $rc -ne 0 ] || fail "a job with a dead rank exited 0"
grep -Eq "rank [01]" "$dir.log" || { cat "$dir.log"; fail "the message does not name the rank"; }
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify "${common[@]}" --epochs 3 --out "$dir" --resume auto > "$dir.log2"
grep -q "resumed from .*ckpt-00000125.h5" "$dir.log2" || fail "did not resume after the rank death"
same_state "$TMP/straight/checkpoints/$last" "$dir/checkpoints/$last" || fail "run after the rank death differs"
ok "rank death: down in $(( $(date +%s) - t0 )) s with '$(grep -Em1 'rank [01]' "$dir.log" | cut -c1-90)', resumed"

# 3b. a rank that hangs between the gradient all-reduce and the step's agreement (the hook
#     SIGSTOPs the last rank there): the agreement has the same deadline, so rank 0 ends
#     the job, naming rank 1, instead of waiting until TCP gives up (forever, on one host)
dir=$TMP/freeze
t0=$(date +%s)
rc=0
DTRAIN_TEST_FREEZE_AT_STEP=30 timeout 120 "${MPIRUN[@]}" -x DTRAIN_TEST_FREEZE_AT_STEP -np 2 "$DTRAIN" classify \
    "${common[@]}" --epochs 1 --comm_timeout 2 --out "$dir" > "$dir.log" 2>&1 || rc=$?
[ $rc -ne 124 ] || { cat "$dir.log"; fail "a rank frozen before the step's agreement hung the job"; }
msg=$(grep -m1 "rank 0/2: .*the step's agreement .* did not complete within comm_timeout = 2 s; no answer from rank 1" \
    "$dir.log") || { cat "$dir.log"; fail "frozen rank (exit $rc): no message naming rank 1"; }
[ $rc -eq 3 ] || { cat "$dir.log"; fail "frozen rank: exit $rc, expected 3"; }
ok "a rank frozen before the step's agreement: exit 3 in $(( $(date +%s) - t0 )) s, '${msg#dtrain: }'"

# 4. the loss becomes NaN: stop with the step, exit 4, no checkpoint written
dir=$TMP/nan
rc=0
"$DTRAIN" classify "${common[@]}" --epochs 2 --optimizer sgd --lr 1e30 --out "$dir" > "$dir.log" 2>&1 || rc=$?
[ $rc -eq 4 ] || { cat "$dir.log"; fail "a NaN loss should exit 4, got $rc"; }
grep -Eq "loss became (NaN|infinite|non-finite).* at step [0-9]+" "$dir.log" || fail "unclear NaN message"
[ -z "$(ls "$dir/checkpoints" 2> /dev/null | grep '\.h5$')" ] || fail "a checkpoint was written after the NaN"
ok "$(grep -Eo 'the loss became.*at step [0-9]+' "$dir.log")"

# 5. a full and a read-only checkpoint filesystem (tmpfs mounts need root and mount rights)
if ! can_mount; then
    echo "SKIP: full/read-only filesystem cases: this machine does not let the test mount a tmpfs"
    exit 0
fi
mnt=$TMP/mnt
mkdir -p "$mnt"
mount -t tmpfs -o size=1200k tmpfs "$mnt"
trap 'umount "$mnt" 2> /dev/null; rm -rf "$TMP"' EXIT
rc=0
"$DTRAIN" classify "${common[@]}" --epochs 3 --out "$TMP/full" --ckpt_dir "$mnt/ck" > "$TMP/full.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$TMP/full.log"; fail "a full disk should exit 1, got $rc"; }
grep -q "No space left on device" "$TMP/full.log" || fail "the message does not say the disk is full"
[ -z "$(ls -a "$mnt/ck" | grep tmp)" ] || fail "a temporary file was left on the full disk"
sum=$(sha256sum "$mnt/ck/ckpt-00000125.h5")
"$DTRAIN" classify "${common[@]}" --epochs 1 --out "$TMP/full2" --resume "$mnt/ck/ckpt-00000125.h5" \
    --ckpt_dir "$TMP/full2/ck" > /dev/null || fail "the checkpoint before the full disk does not load"
ok "full disk: '$(grep -m1 -o 'checkpoint failed.*' "$TMP/full.log" | cut -c1-100)', step 125 intact"

mount -o remount,ro "$mnt"
rc=0
"$DTRAIN" classify "${common[@]}" --epochs 3 --out "$TMP/ro" --ckpt_dir "$mnt/ck" --resume auto > "$TMP/ro.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$TMP/ro.log"; fail "a read-only checkpoint dir should exit 1, got $rc"; }
grep -q "Read-only file system" "$TMP/ro.log" || fail "the message does not say read-only"
[ "$(sha256sum "$mnt/ck/ckpt-00000125.h5")" = "$sum" ] || fail "the checkpoint changed"
! grep -q "^epoch 1/" "$TMP/ro.log" || fail "trained an epoch before finding the checkpoint dir read-only"
ok "read-only: '$(grep -m1 '^dtrain:' "$TMP/ro.log" | cut -c1-100)' before training, step 125 untouched"
