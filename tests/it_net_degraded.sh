#!/usr/bin/env bash
# A network that misbehaves without breaking, 2 hosts (tests/netns.sh), each run compared to
# an undisturbed one, to the bit:
#   1. host 2's link goes down for 3 s mid-run and comes back: the run carries on;
#   2. ~1% of the packets every host receives are dropped (nftables): slower, same result;
#   3. each host's outgoing traffic limited to 200 Mbit/s (tc tbf): slower, same result.
# The slowdowns are printed (measured here, not asserted: the machine is shared).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
DATA=$(mnist_h5)
net_up 2
common=(--data "$DATA" --model lenet --threads 1 --epochs 2)
last=ckpt-00000250.h5 # 2 epochs x 125 steps

# run NAME: the 2-host training into $TMP/NAME, in the background; its pid in $pid
run() {
    net_mpirun --hostfile "$NET_HOSTFILE" -np 2 --map-by node "$DTRAIN" classify "${common[@]}" \
        --out "$TMP/$1" > "$TMP/$1.log" 2>&1 &
    pid=$!
}
# finish NAME: waits for the run, checks it against the reference; its training time in $t
finish() {
    local rc=0
    wait $pid || rc=$?
    [ $rc -eq 0 ] || { cat "$TMP/$1.log"; fail "$1: the run failed (exit $rc)"; }
    same_state "$TMP/ref/checkpoints/$last" "$TMP/$1/checkpoints/$last" || fail "$1: the result differs from the undisturbed run"
    same_losses "$TMP/ref/metrics.jsonl" "$TMP/$1/metrics.jsonl" || fail "$1: the losses differ from the undisturbed run"
    t=$(json_num "$TMP/$1/summary.json" wall_time_s)
}

run ref
wait $pid || { cat "$TMP/ref.log"; fail "the undisturbed run failed"; }
t_ref=$(json_num "$TMP/ref/summary.json" wall_time_s)
ok "undisturbed: ${t_ref} s wall"

# 1. a 3 s flap in the middle of the run
run flap
wait_for "$TMP/flap.log" "^epoch 1/2" 60 || { cat "$TMP/flap.log"; fail "flap: the run did not get going"; }
net_link 2 down
sleep 3
net_link 2 up
kill -0 $pid 2> /dev/null || fail "flap: the run ended before the link came back (not a mid-run flap)"
finish flap
ok "host 2 off the network for 3 s mid-run: finished, identical to the bit (params, Adam state, losses), $t s vs $t_ref s"

# 2. ~1% packet loss on every host's input
for ((i = 1; i <= 2; i++)); do
    net_in "$i" nft -f - << 'EOF'
table inet dtrain_loss {
    chain input {
        type filter hook input priority 0; policy accept;
        numgen random mod 100 < 1 counter drop
    }
}
EOF
done
run loss
finish loss
dropped=0
for ((i = 1; i <= 2; i++)); do
    n=$(net_in "$i" nft list table inet dtrain_loss | grep -o 'packets [0-9]*' | awk '{ print $2 }')
    dropped=$((dropped + n))
    net_in "$i" nft delete table inet dtrain_loss
done
[ "$dropped" -gt 0 ] || fail "loss: nftables dropped no packet"
ok "1% packet loss ($dropped packets dropped): identical to the bit, $t s vs $t_ref s ($(awk -v a="$t" -v b="$t_ref" 'BEGIN { printf "%.2fx", a / b }'))"

# 3. a rate limit on every host's output
for ((i = 1; i <= 2; i++)); do
    net_in "$i" tc qdisc add dev eth0 root tbf rate 200mbit burst 64kb latency 100ms
done
run tbf
finish tbf
sent=$(net_in 1 tc -s qdisc show dev eth0 | grep -o 'Sent [0-9]* bytes' | awk '{ print $2 }')
[ "${sent:-0}" -gt 0 ] || fail "tbf: no traffic went through the rate limiter"
ok "200 Mbit/s rate limit ($((sent / 1000000)) MB through host 1's limiter): identical to the bit, $t s vs $t_ref s ($(awk -v a="$t" -v b="$t_ref" 'BEGIN { printf "%.2fx", a / b }'))"
