#!/usr/bin/env bash
# A two-node Slurm cluster from Debian's packages: two hosts made of network namespaces
# (tests/netns.sh), slurmctld and a slurmd on node1, a slurmd on node2. Then
# slurm/train-multinode.sbatch, submitted as a user would (2 nodes x 1 task, srun --mpi=pmix),
# must end with the same parameters and Adam state, to the bit, as the same training under
# plain mpirun on one host.
# The daemons listen inside the namespaces only, so this cluster cannot collide with
# it_slurm.sh's on the machine's own ports 6817/6818. Without Slurm it prints SKIP, unless
# DTRAIN_REQUIRE_SLURM=1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"

skip() {
    [ "${DTRAIN_REQUIRE_SLURM:-0}" = 1 ] && fail "Slurm is required here (DTRAIN_REQUIRE_SLURM=1): $*"
    echo "SKIP: $*"
    exit 0
}
for b in slurmctld slurmd sbatch srun squeue scontrol sinfo; do
    command -v "$b" > /dev/null || skip "'$b' is not installed (scripts/install-deps.sh --with-slurm)"
done
for v in $(compgen -e); do
    case $v in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$v" ;; esac
done

DATA=$(mnist_h5)
net_up 2
T0=$SECONDS
BASE=$TMP/slurm
mkdir -p "$BASE"/{etc,state,spool,run,log,tmp,pmix/node1,pmix/node2}
# auth/none and cred/none: no munge key to share between the two nodes of a throwaway test
# cluster (a real one uses munge). Each node gets its own directory for PMIx's client files,
# as it would have its own /tmp; here both share the machine's.
write_conf() { # NODE: the config that node's slurmd reads (they differ only in mpi.conf)
    local d=$BASE/etc/$1
    mkdir -p "$d"
    cat > "$d/slurm.conf" << EOF
ClusterName=dtrain2
SlurmctldHost=node1($(net_addr 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
TmpFS=$BASE/tmp
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
NodeName=node1 NodeAddr=$(net_addr 1) CPUs=1 State=UNKNOWN
NodeName=node2 NodeAddr=$(net_addr 2) CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    echo "PMIxCliTmpDirBase=$BASE/pmix/$1" > "$d/mpi.conf"
}
write_conf node1
write_conf node2
export SLURM_CONF=$BASE/etc/node1/slurm.conf

# daemon I CMD...: CMD in host I's network namespace under its hostname, in the background.
# nsenter, not `ip netns exec`: that remounts /sys, and slurmd's cgroup check then fails.
daemon() {
    local i=$1
    shift
    nsenter --net="/run/netns/$(net_ns "$i")" unshare --uts sh -c 'hostname "$0"; exec "$@"' "node$i" "$@" \
        < /dev/null >> "$BASE/log/daemons.out" 2>&1 &
    NET_PIDS+=($!)
}
daemon 1 slurmctld -D -i -f "$BASE/etc/node1/slurm.conf"
daemon 1 slurmd -D -N node1 -f "$BASE/etc/node1/slurm.conf"
daemon 2 slurmd -D -N node2 -f "$BASE/etc/node2/slurm.conf"
# the clients talk to slurmctld on node1's address: they run there too
sl() { net_in 1 "$@"; }
for ((i = 0; i < 300; i++)); do
    [ "$(sl sinfo -h -o '%D %t' 2> /dev/null)" = "2 idle" ] && break
    sleep 0.1
done
[ "$(sl sinfo -h -o '%D %t' 2> /dev/null)" = "2 idle" ] || {
    tail -n 20 "$BASE"/log/* >&2
    fail "the two nodes did not become idle in 30 s: $(sl sinfo 2>&1)"
}
ok "two-node Slurm up in $((SECONDS - T0)) s: $(sl sinfo -h -o '%D nodes (%N), %t')"

# The job as a user submits it from the checkout; the allocation's size on the command line.
export DTRAIN_HOME=$SRC DTRAIN
export DTRAIN_ARGS="--model lenet --data $DATA --epochs 1"
WORK=$TMP/jobs
mkdir -p "$WORK"
cd "$WORK" || exit 1
t=$SECONDS
jid=$(sl sbatch --parsable --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 --time=00:05:00 \
    "$SRC/slurm/train-multinode.sbatch") || fail "sbatch refused the job"
for ((i = 0; i < 600; i++)); do
    [ -z "$(sl squeue -h -j "$jid" 2> /dev/null)" ] && break
    sleep 0.2
done
log=$WORK/dtrain-multi-$jid.out
state=$(sl scontrol show job "$jid" | grep -o 'JobState=[A-Z]*' | cut -d= -f2)
[ "$state" = COMPLETED ] || {
    cat "$log" >&2
    tail -n 20 "$BASE"/log/* >&2
    fail "job $jid ended $state"
}
grep -q "2 ranks on 2 nodes \[node1,node2\] .*launcher srun" "$log" ||
    { cat "$log"; fail "job $jid did not run 2 ranks on node1 and node2 through srun"; }
ok "job $jid (train-multinode.sbatch, 2 nodes x 1 task via srun --mpi=pmix): COMPLETED in $((SECONDS - t)) s"

# the same training under plain mpirun, 2 ranks on one host
# shellcheck disable=SC2086 # DTRAIN_ARGS is a list of words, as the job script reads it
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify $DTRAIN_ARGS --threads 1 --out "$TMP/reference" > "$TMP/reference.log" ||
    fail "the mpirun reference run failed: $(tail -n 5 "$TMP/reference.log")"
last=ckpt-00000125.h5
same_state "$TMP/reference/checkpoints/$last" "$WORK/runs/dtrain-multi-$jid/checkpoints/$last" ||
    fail "the two-node Slurm job and the one-host mpirun run differ"
ok "job $jid on node1+node2 == mpirun -np 2 on one host, to the bit (params, Adam state)"
echo "total $((SECONDS - T0)) s"
