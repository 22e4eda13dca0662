#!/usr/bin/env bash
# Ranks on different hosts, MPI over TCP: three hosts made of network namespaces joined by a
# bridge (tests/netns.sh), mpirun placing one rank per host through a launcher agent.
#   1. the start-up line names the hosts the ranks found;
#   2. data-parallel equivalence: 2 hosts x batch 32 and 3 hosts x batch 22 == 1 rank x the
#      whole batch (the mpi_equivalence program, as in it_equivalence.sh);
#   3. bit-exact resume across hosts: stop + resume == straight, on 2 hosts and on 3.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
DATA=$(mnist_h5)
EQ=$BIN/tests/mpi_equivalence
net_up 3
T0=$SECONDS

# 1. who is where
net_mpirun --hostfile "$NET_HOSTFILE" -np 3 --map-by node "$DTRAIN" classify --data "$DATA" --model lenet \
    --threads 1 --batch_size 66 --max_steps 2 --out "$TMP/hello" > "$TMP/hello.log" 2>&1 ||
    { cat "$TMP/hello.log"; fail "a 3-host run failed"; }
grep -q "3 ranks on 3 nodes \[node1,node2,node3\] (local ranks 0-0)" "$TMP/hello.log" ||
    fail "the start-up line does not name the 3 hosts: $(head -n 1 "$TMP/hello.log")"
ok "$(grep -o '3 ranks on 3 nodes[^|]*' "$TMP/hello.log")"

# 2. equivalence over TCP
for hosts in 2 3; do
    batch=$((hosts == 2 ? 64 : 66))
    common=(--data "$DATA" --model lenet --batch_size $batch --steps 10 --threads 1)
    "${MPIRUN[@]}" -np 1 "$EQ" "${common[@]}" --out "$TMP/eq1-$hosts" --dump "$TMP/p1.bin" > /dev/null
    net_mpirun --hostfile "$NET_HOSTFILE" -np $hosts --map-by node "$EQ" "${common[@]}" --out "$TMP/eq-$hosts" \
        --dump "$TMP/p$hosts.bin" > "$TMP/eq.log" 2>&1 || { cat "$TMP/eq.log"; fail "$hosts hosts: mpi_equivalence failed"; }
    "$EQ" --compare "$TMP/p1.bin" "$TMP/p$hosts.bin" 1e-5 ||
        fail "$hosts hosts x batch $((batch / hosts)) != 1 rank x batch $batch"
    ok "$hosts hosts x batch $((batch / hosts)) over TCP == 1 rank x batch $batch after 10 steps"
done

# 3. bit-exact resume with the ranks on different hosts
for hosts in 2 3; do
    batch=$((hosts == 2 ? 64 : 66))
    common=(--data "$DATA" --model lenet --epochs 1 --threads 1 --batch_size $batch --ckpt_interval 40)
    last=$(printf 'ckpt-%08d.h5' $((8000 / batch)))
    run() { net_mpirun --hostfile "$NET_HOSTFILE" -np $hosts --map-by node "$@"; }
    run "$DTRAIN" classify "${common[@]}" --out "$TMP/straight$hosts" > "$TMP/log" 2>&1 ||
        { cat "$TMP/log"; fail "$hosts hosts: the straight run failed"; }
    rc=0
    run -x DTRAIN_TEST_STOP_AT_STEP=70 "$DTRAIN" classify "${common[@]}" --out "$TMP/resumed$hosts" \
        > "$TMP/log" 2>&1 || rc=$?
    [ $rc -eq 75 ] || { cat "$TMP/log"; fail "$hosts hosts: a stop should exit 75, got $rc"; }
    run "$DTRAIN" classify "${common[@]}" --out "$TMP/resumed$hosts" --resume auto > "$TMP/log" 2>&1 ||
        { cat "$TMP/log"; fail "$hosts hosts: the resume failed"; }
    grep -q "resumed from .*ckpt-00000070.h5: step 70" "$TMP/log" || fail "$hosts hosts: did not resume from step 70"
    same_state "$TMP/straight$hosts/checkpoints/$last" "$TMP/resumed$hosts/checkpoints/$last" ||
        fail "$hosts hosts: resumed parameters differ from the straight run"
    same_losses "$TMP/straight$hosts/metrics.jsonl" "$TMP/resumed$hosts/metrics.jsonl" ||
        fail "$hosts hosts: resumed losses differ from the straight run"
    ok "$hosts hosts: stop at step 70 + resume == straight run, to the bit (params, Adam state, losses)"
done
echo "total $((SECONDS - T0)) s"
