#!/usr/bin/env bash
# A host cut off the network in the middle of a 3-host run (tests/netns.sh): the job ends
# within a bound, with a message that names the rank and the host that stopped answering;
# the last checkpoint is intact, and the run resumes on the two hosts that remain, at world
# size 2, and finishes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
DATA=$(mnist_h5)
net_up 3
# comm_timeout 10 (default 30) keeps the test short; README gives the bound for both
common=(--data "$DATA" --model lenet --threads 1 --batch_size 66 --epochs 3 --comm_timeout 10)
run=$TMP/run

net_mpirun --hostfile "$NET_HOSTFILE" -np 3 --map-by node "$DTRAIN" classify "${common[@]}" --out "$run" \
    > "$TMP/log" 2>&1 &
pid=$!
wait_for "$TMP/log" "^checkpoint .*ckpt-00000121.h5" 60 || { cat "$TMP/log"; fail "the run did not get through epoch 1"; }
net_link 3 down
t0=$SECONDS
for _ in $(seq 900); do kill -0 $pid 2> /dev/null || break; sleep 0.1; done
kill -0 $pid 2> /dev/null && { cat "$TMP/log"; fail "the job still runs 90 s after host 3 was cut off"; }
took=$((SECONDS - t0))
rc=0
wait $pid || rc=$?
[ $rc -ne 0 ] || fail "a job that lost a host exited 0"
msg=$(grep -m1 "no answer from rank 2 (node3)" "$TMP/log") ||
    { cat "$TMP/log"; fail "no message naming rank 2 on node3"; }
ok "host 3 cut off: the job ended in $took s (exit $rc): '${msg#dtrain: }'"

# the last checkpoint is whole: the resume on hosts 1 and 2 loads it and finishes the run
latest=$(cat "$run/checkpoints/latest")
h5ls "$run/checkpoints/$latest" > /dev/null || fail "the last checkpoint $latest does not open"
head -n 2 "$NET_HOSTFILE" > "$TMP/hosts2"
net_mpirun --hostfile "$TMP/hosts2" -np 2 --map-by node "$DTRAIN" classify "${common[@]}" --out "$run" \
    --resume auto > "$TMP/log2" 2>&1 || { cat "$TMP/log2"; fail "the resume on 2 hosts failed"; }
grep -q "2 ranks on 2 nodes \[node1,node2\]" "$TMP/log2" || fail "the resume did not run on node1 and node2"
grep -q "resumed from .*$latest: step [0-9]*, .*written by 3 ranks" "$TMP/log2" ||
    { cat "$TMP/log2"; fail "the resume did not start from $latest written by 3 ranks"; }
[ "$(json_num "$run/summary.json" world_size)" = 2 ] || fail "the finished run's world size is not 2"
[ "$(json_num "$run/summary.json" steps)" = 363 ] || fail "the resumed run did not finish 3 epochs (363 steps)"
acc=$(json_num "$run/summary.json" test_acc)
ge "$acc" 0.95 || fail "test_acc $acc after the resumed run"
ok "resumed from $latest on node1,node2 (world size 3 -> 2): finished 3 epochs, test_acc $acc"
