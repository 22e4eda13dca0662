#!/usr/bin/env bash
# Resume is bit-exact: N steps straight == N/2 steps + stop + resume + N/2 steps, in the
# parameters, the optimizer state and every logged loss; with 1 rank and with 2 ranks.
# And a resume on another number of ranks finishes the epoch without repeating or skipping.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
common=(--data "$DATA" --model lenet --epochs 3 --threads 1 --ckpt_interval 50)
last=ckpt-00000375.h5 # 3 epochs x 125 steps (global batch 64 over 8,000 images)

for np in 1 2; do
    "${MPIRUN[@]}" -np $np "$DTRAIN" classify "${common[@]}" --out "$TMP/straight$np" > /dev/null
    rc=0
    DTRAIN_TEST_STOP_AT_STEP=190 "${MPIRUN[@]}" -np $np "$DTRAIN" classify "${common[@]}" \
        --out "$TMP/resumed$np" > "$TMP/log" || rc=$?
    [ $rc -eq 75 ] || fail "$np rank(s): a stop should exit 75 (preempted), got $rc"
    grep -q "checkpoint .*ckpt-00000190.h5" "$TMP/log" || fail "no checkpoint at the stop step"
    "${MPIRUN[@]}" -np $np "$DTRAIN" classify "${common[@]}" --out "$TMP/resumed$np" --resume auto \
        > "$TMP/log" 2> "$TMP/err"
    grep -q "resumed from .*ckpt-00000190.h5: step 190" "$TMP/log" || fail "did not resume from step 190"
    ! grep -q "warning" "$TMP/err" || fail "a resume with the same keys warned: $(cat "$TMP/err")"
    same_state "$TMP/straight$np/checkpoints/$last" "$TMP/resumed$np/checkpoints/$last" ||
        fail "$np rank(s): resumed parameters differ from the straight run"
    same_losses "$TMP/straight$np/metrics.jsonl" "$TMP/resumed$np/metrics.jsonl" ||
        fail "$np rank(s): resumed losses differ from the straight run"
    ok "$np rank(s): stop at step 190 + resume == 375 steps straight, to the bit (params, Adam state, losses)"
done

# the comparison can fail: a different seed must not compare equal
"$DTRAIN" classify "${common[@]}" --seed 1 --out "$TMP/other" > /dev/null
same_state "$TMP/straight1/checkpoints/$last" "$TMP/other/checkpoints/$last" 2> /dev/null &&
    fail "same_state does not tell two different runs apart"

# saved by 2 ranks mid-epoch, resumed by 1 and by 3: the epoch's examples once each
for np in 1 3; do
    dir=$TMP/resize$np
    rc=0
    DTRAIN_TEST_STOP_AT_STEP=60 DTRAIN_TEST_TRACE_EXAMPLES=$dir.trace "${MPIRUN[@]}" -np 2 "$DTRAIN" classify \
        --data "$DATA" --model lenet --epochs 1 --threads 1 --out "$dir" > /dev/null || rc=$?
    [ $rc -eq 75 ] || fail "stop should exit 75, got $rc"
    batch=64; [ $np -eq 3 ] && batch=66
    DTRAIN_TEST_TRACE_EXAMPLES=$dir.trace "${MPIRUN[@]}" -np $np "$DTRAIN" classify --data "$DATA" --model lenet \
        --epochs 1 --threads 1 --batch_size $batch --out "$dir" --resume auto > "$TMP/log" 2> "$TMP/err"
    grep -q "written by 2 ranks" "$TMP/log" || fail "resume did not report the saving world"
    # a key changed on resume is named with both values, once (rank 0); the same keys say nothing
    if [ $batch -ne 64 ]; then
        [ "$(grep -c "warning: resuming .* with batch_size = $batch where it was trained with 64;" "$TMP/err")" -eq 1 ] ||
            fail "no single warning for the changed batch_size: $(cat "$TMP/err")"
    else
        ! grep -q "warning" "$TMP/err" || fail "resume warned: $(cat "$TMP/err")"
    fi
    cat "$dir".trace.* | awk '$1 == 0 { print $2 }' | sort -n > "$TMP/seen"
    dups=$(uniq -d "$TMP/seen" | wc -l)
    seen=$(uniq "$TMP/seen" | wc -l)
    [ "$dups" -eq 0 ] || fail "2 -> $np ranks: $dups examples seen twice in the epoch"
    # only the drop-last remainder (fewer than one global batch) may go unseen
    [ $((8000 - seen)) -lt $batch ] || fail "2 -> $np ranks: $((8000 - seen)) examples skipped"
    acc=$(json_num "$dir/summary.json" test_acc)
    ge "$acc" 0.90 || fail "2 -> $np ranks: accuracy $acc after the resumed epoch"
    ok "saved by 2 ranks at step 60, resumed by $np: $seen distinct examples, none twice, test_acc $acc"
done

# a checkpoint of another model is refused, naming the tensor
rc=0
"$DTRAIN" classify --data "$DATA" --model mlp --epochs 1 --out "$TMP/x" \
    --resume "$TMP/straight1/checkpoints/$last" 2> "$TMP/err" > /dev/null || rc=$?
[ $rc -eq 2 ] || fail "incompatible checkpoint should exit 2, got $rc"
grep -q "incompatible with this model" "$TMP/err" || fail "unclear message: $(cat "$TMP/err")"
ok "$(head -n 1 "$TMP/err")"

# a checkpoint from an older dtrain, whose config lacks a key this one has: the resume goes
# on with the key's current value and says so, once
old=$TMP/older.h5
cp "$TMP/straight1/checkpoints/$last" "$old"
"$BIN/tests/tool_h5_edit" "$old" drop-line config "augment_shift = "
"$DTRAIN" classify "${common[@]}" --out "$TMP/older" --resume "$old" > /dev/null 2> "$TMP/err"
[ "$(grep -c "warning: resuming .*older.h5, whose config has no key 'augment_shift'" "$TMP/err")" -eq 1 ] ||
    fail "no single warning for a key the checkpoint lacks: $(cat "$TMP/err")"
[ "$(grep -c warning "$TMP/err")" -eq 1 ] || fail "other warnings: $(cat "$TMP/err")"
ok "$(grep -m1 -o "whose config has no key.*" "$TMP/err")"
