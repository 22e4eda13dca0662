# Several "hosts" on one machine for the multi-node tests; sourced after lib.sh, not run.
#
#   net_up N        N hosts node1..nodeN, each a network namespace with its own address
#                   10.77.0.(10+i)/24 on eth0, joined by veth pairs to a bridge that lives in
#                   a switch namespace. The /24 exists only inside these namespaces and they
#                   have no route out: nothing leaves the machine.
#   net_mpirun ARGS...   mpirun, run inside node1, placing ranks on the hosts named in
#                   $NET_HOSTFILE (or --host) through a launcher agent, MPI over TCP only
#   net_link I down|up   cut host I off the bridge, or reconnect it
#   net_in I CMD...      run CMD inside host I's namespace (under the host's name)
#   net_down        teardown: everything net_up made, by PID and by name; also on EXIT/INT/TERM
#
# Names carry a per-run prefix (dtn<pid>-), so that tests running at the same time, and
# other namespaces on the machine, are never touched.
NET_P=dtn$$-
NET_SUBNET=10.77.0.0/24
NET_N=0
NET_PIDS=()

net_addr() { echo "10.77.0.$((10 + $1))"; }
net_ns() { echo "${NET_P}h$1"; }

# running PID: alive and not a zombie waiting for us to reap it
running() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; }

net_down() {
    local i ns pid left
    # daemons the test started: TERM, up to 5 s to exit (slurmctld reaps its helpers), then KILL
    for pid in "${NET_PIDS[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${NET_PIDS[@]}"; do running "$pid" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${NET_PIDS[@]}"; do
        kill -9 "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    NET_PIDS=()
    for ((i = 0; i <= NET_N; i++)); do
        if ((i == 0)); then ns=${NET_P}sw; else ns=$(net_ns "$i"); fi
        [ -e "/run/netns/$ns" ] || continue
        for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$pid" 2> /dev/null || true; done
    done
    for ((i = 0; i <= NET_N; i++)); do
        if ((i == 0)); then ns=${NET_P}sw; else ns=$(net_ns "$i"); fi
        [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2> /dev/null || true
    done
    NET_N=0
}

net_cleanup() {
    net_down
    rm -rf "$TMP"
}
trap net_cleanup EXIT
trap 'exit 143' TERM INT

# net_skip REASON: without the rights to make namespaces, the test cannot run here
net_skip() {
    [ "${DTRAIN_REQUIRE_NETNS:-0}" = 1 ] && fail "network namespaces are required here: $*"
    echo "SKIP: $*"
    exit 0
}

net_up() {
    local n=$1 i ns sw=${NET_P}sw
    command -v ip > /dev/null || net_skip "no 'ip' (iproute2)"
    ip netns add "$sw" 2> "$TMP/netns.err" || net_skip "cannot create a network namespace: $(cat "$TMP/netns.err")"
    NET_N=$n
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    for ((i = 1; i <= n; i++)); do
        ns=$(net_ns "$i")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$ns" link add eth0 type veth peer name p$i netns "$sw"
        ip -n "$ns" addr add "$(net_addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$sw" link set p$i master br0
        ip -n "$sw" link set p$i up
        # A dead link is given up after ~25 s of retransmits instead of the default ~15 min
        # (tcp_retries2 = 15): Open MPI's daemons then notice a lost host within a bound. Not
        # less: a rank with data in flight to a lost host must hear of it from dtrain's own
        # deadline (it_net_linkdown: comm_timeout 10 s + a probe of 2.5 s) before TCP's
        # "Connection timed out" makes Open MPI end the job with a message naming no one.
        ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_retries2=6
    done
    # Each host runs a launcher agent that mpirun calls like ssh: `agent HOST command...`
    cat > "$TMP/agent" << EOF
#!/bin/sh
# launcher agent for mpirun: the host's address (or name) -> its namespace and hostname
host=\$1; shift
i=\${host##*.}; i=\${i#node}; [ "\$i" -gt 10 ] 2> /dev/null && i=\$((i - 10))
exec nsenter --net=/run/netns/${NET_P}h\$i unshare --uts sh -c "hostname node\$i; \$*"
EOF
    chmod +x "$TMP/agent"
    NET_HOSTFILE=$TMP/hosts
    : > "$NET_HOSTFILE"
    for ((i = 1; i <= n; i++)); do echo "$(net_addr "$i") slots=4" >> "$NET_HOSTFILE"; done
    mkdir -p "$TMP/ompi"
}

# net_in I CMD...: CMD inside host I, under its hostname
net_in() {
    local i=$1
    shift
    nsenter --net="/run/netns/$(net_ns "$i")" unshare --uts sh -c 'hostname "$0"; exec "$@"' "node$i" "$@"
}

# net_mpirun ARGS...: mpirun in host 1; all traffic (MPI and Open MPI's own) on the private /24
net_mpirun() {
    net_in 1 mpirun --mca plm_rsh_agent "$TMP/agent" --mca btl tcp,self --mca pml ob1 \
        --mca btl_tcp_if_include "$NET_SUBNET" --mca oob_tcp_if_include "$NET_SUBNET" \
        --mca orte_tmpdir_base "$TMP/ompi" --oversubscribe "$@"
}

# net_link I down|up: host I's port on the bridge
net_link() { ip -n "${NET_P}sw" link set "p$1" "$2"; }
