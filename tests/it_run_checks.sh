#!/usr/bin/env bash
# The trainer's checks around a run: values that only make sense together, labels outside
# the model's classes, a fresh start into a directory that holds a run, and the final
# evaluation of a run that max_steps ends between epochs.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
mlp=(classify --model mlp --data "$DATA")

# values a key's own range lets through but the run cannot use
expect_error "bad value '4294967360' for key 'batch_size': expected an integer in 1..2147483647" \
    "$DTRAIN" "${mlp[@]}" --batch_size 4294967360 --out "$TMP/x"
expect_error "bad value '1' for key 'beta2': expected a number in 0..<1" "$DTRAIN" "${mlp[@]}" --beta2 1 --out "$TMP/x"
expect_error "key 'min_lr': the cosine schedule decays from lr (1e-3) down to min_lr" \
    "$DTRAIN" "${mlp[@]}" --lr_schedule cosine --min_lr 0.01 --out "$TMP/x"
expect_error "bad value '' for key 'out'" "$DTRAIN" "${mlp[@]}" --out ""
expect_error "bad value '' for key 'data'" "$DTRAIN" classify --data "" --out "$TMP/x"
expect_error "bad value '9000' for key 'batch_size': batch_size x grad_accum (9000) is more than the training set" \
    "$DTRAIN" "${mlp[@]}" --batch_size 9000 --out "$TMP/x"
[ ! -e "$TMP/x" ] || fail "a refused run left $TMP/x behind"

# a label outside 0..9, in the file's second half (rank 1's shard at 2 ranks): every job
# that reads labels names the file, the dataset, the label and its index, and exits 2
cp "$DATA" "$TMP/bad.h5"
"$BIN/tests/tool_h5_edit" "$TMP/bad.h5" set-u8 /train/labels 5000 42
[ "$(h5dump -d /train/labels -s 5000 -c 1 "$TMP/bad.h5" | grep -o '(5000): [0-9]*')" = "(5000): 42" ] ||
    fail "could not plant the bad label"
want="bad.h5: /train/labels: label 42 at index 5000: expected 0..9"
expect_error "$want" "$DTRAIN" "${mlp[@]}" --data "$TMP/bad.h5" --out "$TMP/x"
[ "$(grep -c . "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "more than one line for a bad label"; }
expect_error "rank 1/2: .*$want" "${MPIRUN[@]}" -np 2 "$DTRAIN" "${mlp[@]}" --data "$TMP/bad.h5" --out "$TMP/x"
# checks every rank makes while setting up are collective: one line from the lowest failing
# rank, a clean exit 2 on every rank, no MPI_Abort
one_line() { # CMD...: fails with exit 2 and exactly one dtrain line, without MPI_ABORT
    local status=0
    "$@" > "$TMP/out" 2> "$TMP/err" || status=$?
    [ $status -eq 2 ] || { cat "$TMP/err"; fail "exit $status, expected 2: $*"; }
    [ "$(grep -c '^dtrain' "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "not one dtrain line: $*"; }
    ! grep -q "MPI_ABORT" "$TMP/err" || { cat "$TMP/err"; fail "MPI_Abort for a set-up error: $*"; }
    ok "2 ranks, one line: $(grep '^dtrain' "$TMP/err")"
}
one_line "${MPIRUN[@]}" -np 2 "$DTRAIN" "${mlp[@]}" --data "$TMP/bad.h5" --out "$TMP/x"
one_line "${MPIRUN[@]}" -np 2 "$DTRAIN" "${mlp[@]}" --data "$TMP/nosuch.h5" --out "$TMP/x"
one_line "${MPIRUN[@]}" -np 2 "$DTRAIN" diffusion --data "$DATA" --channel_mult 1,x --out "$TMP/x"
one_line "${MPIRUN[@]}" -np 2 "$DTRAIN" "${mlp[@]}" --batch_size 9000 --out "$TMP/x"
expect_error "$want" "$DTRAIN" diffusion --data "$TMP/bad.h5" --channels 8 --channel_mult 1,2 --groups 4 --out "$TMP/x"

# a run ended by max_steps in the middle of an epoch is still evaluated, and its summary
# says which fraction of an epoch it trained
"$DTRAIN" "${mlp[@]}" --max_steps 10 --out "$TMP/short" > "$TMP/short.log"
acc=$(json_num "$TMP/short/summary.json" test_acc)
[ -n "$acc" ] && ge "$acc" 0.5 || fail "no or low test_acc after 10 steps: '$acc'"
[ "$(json_num "$TMP/short/summary.json" epochs)" = 0.08 ] || fail "epochs should be 10/125 = 0.08"
grep -q '"step": 10, "test_loss"' "$TMP/short/metrics.jsonl" || fail "no evaluation line at step 10"
grep -q "final test accuracy: $(awk -v a="$acc" 'BEGIN { printf "%.2f", 100 * a }')%" "$TMP/short.log" ||
    fail "the log's final accuracy is not the summary's"
ok "max_steps 10 (of 125 per epoch): evaluated at step 10, test_acc $acc, epochs 0.08"

# resuming a finished run (a requeued job) changes nothing and says so
cp "$TMP/short/metrics.jsonl" "$TMP/metrics.before"
cp "$TMP/short/summary.json" "$TMP/summary.before"
"$DTRAIN" "${mlp[@]}" --max_steps 10 --out "$TMP/short" --resume auto > "$TMP/again.log"
grep -q "already complete at step 10: nothing to do" "$TMP/again.log" || fail "no 'already complete' line"
cmp -s "$TMP/metrics.before" "$TMP/short/metrics.jsonl" || fail "resuming a finished run changed metrics.jsonl"
cmp -s "$TMP/summary.before" "$TMP/short/summary.json" || fail "resuming a finished run changed summary.json"
ok "resuming a finished run: nothing to do, metrics and summary untouched"

# a fresh start never overwrites a run: it stops, unchanged files, and says how to go on
expect_error "already holds a run .*ckpt-00000010.h5.*--resume auto" "$DTRAIN" "${mlp[@]}" --max_steps 20 --out "$TMP/short"
cmp -s "$TMP/metrics.before" "$TMP/short/metrics.jsonl" || fail "the refused start changed metrics.jsonl"
rm -r "$TMP/short/checkpoints"
expect_error "already holds a run .*metrics.jsonl.* but no checkpoint" "$DTRAIN" "${mlp[@]}" --max_steps 20 --out "$TMP/short"
"$DTRAIN" "${mlp[@]}" --max_steps 20 --out "$TMP/short" --resume auto > /dev/null ||
    fail "--resume auto in a run directory without checkpoints should start afresh"
ok "--resume auto with no checkpoint left starts afresh"
