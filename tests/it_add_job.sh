#!/usr/bin/env bash
# README's "Add a job", followed for real: tests/linreg/ is a fourth job (linear regression
# on synthetic data) written from the recipe without touching the other three. Through the
# trainer it learns (the loss falls from the first step to the end, on 1 and 2 ranks), writes
# checkpoints, and a stop + resume ends bit for bit where the straight run does.
source "$(dirname "$0")/lib.sh"
LINREG=$BIN/tests/dtrain_linreg
common=(--threads 1 --log_interval 1 --ckpt_interval 100)
last=ckpt-00000384.h5 # 3 epochs x 128 steps (4,096 examples, batch 32)

for np in 1 2; do
    "${MPIRUN[@]}" -np $np "$LINREG" "${common[@]}" --out "$TMP/straight$np" > "$TMP/log$np"
    first=$(grep -m1 '"loss"' "$TMP/straight$np/metrics.jsonl" | grep -o '"loss": [-0-9.eE+]*' | sed 's/.*: //')
    final=$(json_num "$TMP/straight$np/summary.json" test_loss)
    # the first step sees about |w_true|^2 + b_true^2 + noise^2 (33 at seed 0, 16 features);
    # the fit ends near the label noise, 0.1^2
    ge "$first" 1 || fail "$np rank(s): first loss $first, expected an untrained model's"
    ge 0.05 "$final" || fail "$np rank(s): test_loss $final after 3 epochs (first step: $first)"
    [ -f "$TMP/straight$np/checkpoints/$last" ] || fail "$np rank(s): no final checkpoint"
    ok "$np rank(s): loss $first at step 1, test_loss $final after 384 steps"
done

rc=0
DTRAIN_TEST_STOP_AT_STEP=150 "$LINREG" "${common[@]}" --out "$TMP/resumed" > /dev/null || rc=$?
[ $rc -eq 75 ] || fail "a stop should exit 75, got $rc"
"$LINREG" "${common[@]}" --out "$TMP/resumed" --resume auto > "$TMP/log"
grep -q "resumed from .*ckpt-00000150.h5: step 150" "$TMP/log" || fail "did not resume from step 150"
same_state "$TMP/straight1/checkpoints/$last" "$TMP/resumed/checkpoints/$last" ||
    fail "the resumed linreg run differs from the straight one"
same_losses "$TMP/straight1/metrics.jsonl" "$TMP/resumed/metrics.jsonl" || fail "the resumed losses differ"
ok "stop at step 150 + resume == 384 steps straight, to the bit (params, Adam state, losses)"
