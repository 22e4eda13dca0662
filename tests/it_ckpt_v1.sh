#!/usr/bin/env bash
# A checkpoint of format 1 (tests/data/ckpt-v1-classify-mlp.h5: written by the dtrain of
# before the checkpoint contract, 2 ranks, stopped at step 40 of epoch 1 of a 2-epoch MLP
# run on the shipped MNIST subset with --data mnist.h5) still resumes: on 2 ranks it ends
# bit for bit where the same run does straight through with today's code (the format-1
# root attributes, RNG streams and byte blob read into today's record); on 1 rank it finishes
# the epoch without repeating an example. Checkpoints written now are format 2.
source "$(dirname "$0")/lib.sh"
V1=$SRC/tests/data/ckpt-v1-classify-mlp.h5
cd "$TMP"
ln -s "$(mnist_h5)" mnist.h5
run=(classify --data mnist.h5 --model mlp --hidden 2 --optimizer sgd --lr 0.05 --epochs 2 --threads 1)
last=ckpt-00000250.h5

[ "$(h5dump -a /format_version "$V1" | grep -c '(0): 1$')" -eq 1 ] || fail "$V1 is not a format-1 checkpoint"
"${MPIRUN[@]}" -np 2 "$DTRAIN" "${run[@]}" --out straight > /dev/null
"${MPIRUN[@]}" -np 2 "$DTRAIN" "${run[@]}" --out resumed --resume "$V1" > log 2> err
grep -q "resumed from .*ckpt-v1-classify-mlp.h5: step 40, epoch 1, step 40 of the epoch (written by 2 ranks)" log ||
    fail "did not resume from the v1 checkpoint: $(cat log err)"
! grep -q warning err || fail "the v1 resume warned: $(cat err)"
same_state straight/checkpoints/$last resumed/checkpoints/$last || fail "v1 resume differs from the straight run"
# the resumed run's epoch lines equal the straight run's (its first epoch's train loss
# includes the loss sums the v1 blob carried)
same_losses <(grep '"epoch"' straight/metrics.jsonl) <(grep '"epoch"' resumed/metrics.jsonl) ||
    fail "v1 resume: the epoch lines differ from the straight run"
[ "$(h5dump -a /format_version resumed/checkpoints/$last | grep -c '(0): 2$')" -eq 1 ] ||
    fail "a new checkpoint is not format 2"
ok "format-1 checkpoint at step 40 (2 ranks) + resume == 250 steps straight, to the bit"

DTRAIN_TEST_TRACE_EXAMPLES=$TMP/trace "$DTRAIN" "${run[@]}" --out one --resume "$V1" --batch_size 64 > log 2> err
grep -q "written by 2 ranks" log || fail "1-rank resume of the v1 checkpoint: $(cat log err)"
seen=$(awk '$1 == 0 { print $2 }' trace.0 | sort -n | uniq | wc -l)
# 40 steps x 64 consumed before the stop: the other 5,440 (85 steps of 64) once each
[ "$(awk '$1 == 0' trace.0 | wc -l)" -eq 5440 ] && [ "$seen" -eq 5440 ] ||
    fail "2 -> 1 ranks: $seen distinct of $(awk '$1 == 0' trace.0 | wc -l) examples after the resume, expected 5440"
ok "format-1 checkpoint resumed on 1 rank: the epoch's 5440 remaining examples once each"
