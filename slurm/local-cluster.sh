#!/usr/bin/env bash
# A private single-node Slurm cluster for trying the job scripts and for tests/it_slurm.sh:
# one munged, one slurmctld and one slurmd, all started from Debian's packages without
# systemd and without touching /etc/slurm, /etc/munge or /run/munge.
#
#   slurm/local-cluster.sh start     # prints the `export SLURM_CONF=...` line to use
#   slurm/local-cluster.sh status
#   slurm/local-cluster.sh stop      # cancels this cluster's jobs, stops only the daemons it started
#
# Everything lives under SLURM_BASE (default /tmp/dtrain-slurm): config, munge key and
# socket, state, spool, logs, and the pids of the three daemons. Environment:
#   SLURM_BASE      the private directory
#   KEEP_STATE=1    keep the controller's state (job ids, queued jobs) across a restart
#   SLURMCTLD_PORT, SLURMD_PORT   default 6817 and 6818; one cluster per machine with these
#   START_TIMEOUT   seconds to wait for the node to become idle (default 30)
# Exit codes of start: 0 up; 3 a binary is missing; 4 a port is taken or a cluster is
# already running from this SLURM_BASE; 5 a daemon failed to come up (its log is printed).
set -euo pipefail

BASE=${SLURM_BASE:-/tmp/dtrain-slurm}
CONF=$BASE/etc/slurm.conf
SOCKET=$BASE/munge/munge.socket
PIDS=$BASE/run/pids
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
NODE=localhost # slurmd is told its name with -N: the machine's hostname need not resolve

say() { echo "local-cluster: $*"; }
die() { local rc=$1; shift; echo "local-cluster: $*" >&2; exit "$rc"; }

# alive PID NAME: PID is running and is still the NAME we started (pids get reused)
alive() {
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q "$2"
}

# port_taken PORT: something on this machine already listens on PORT
port_taken() {
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null
}

write_conf() {
    local cpus
    cpus=$(nproc)
    cat > "$CONF" << EOF
# Written by slurm/local-cluster.sh: a one-node cluster private to $BASE.
ClusterName=dtrain-local
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# our own munged, not the system one
AuthInfo=socket=$SOCKET
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
# PMIx keeps per-step directories named only by uid, job and step id (spmix_appdir_0_1.0)
# under TmpFS: in the shared /tmp, one left by a killed cluster makes every srun of job 1
# in the next one fail to launch. A private TmpFS keeps clusters apart.
TmpFS=$BASE/tmp
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# no cgroups needed: works in containers and without systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Debian's Open MPI uses an external PMIx: only --mpi=pmix can start it under srun
MpiDefault=pmix
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
# finished jobs stay visible to scontrol show job for 5 minutes (there is no accounting)
MinJobAge=300
KillWait=10
JobRequeue=1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    # 1 KiB random key, readable by root only; munged insists on that
    head -c 1024 /dev/urandom > "$BASE/munge/munge.key"
    chmod 400 "$BASE/munge/munge.key"
    # the socket's directory must be searchable by everyone, or munged warns and clients fail
    chmod 755 "$BASE/munge"
    munged --foreground --force --socket="$SOCKET" --key-file="$BASE/munge/munge.key" \
        --pid-file="$BASE/run/munged.pid" --seed-file="$BASE/munge/munged.seed" \
        --log-file="$BASE/log/munged.log" < /dev/null >> "$BASE/log/munged.out" 2>&1 &
    echo "munged $!" >> "$PIDS"
    local i
    for ((i = 0; i < 50; i++)); do
        munge -n -S "$SOCKET" 2> /dev/null | unmunge -S "$SOCKET" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# Prints the last lines of every log, so that a failed start explains itself.
show_logs() {
    local f
    for f in "$BASE"/log/*; do
        [ -s "$f" ] || continue
        echo "---- $f" >&2
        tail -n 15 "$f" >&2
    done
}

cmd_start() {
    local b
    for b in munged munge unmunge slurmctld slurmd sinfo squeue scontrol sbatch srun; do
        command -v "$b" > /dev/null || die 3 "'$b' not found: install slurmctld slurmd slurm-client munge"
    done
    if [ -f "$PIDS" ]; then
        local name pid
        while read -r name pid; do
            alive "$pid" "$name" && die 4 "already running from $BASE ($name pid $pid); stop it first"
        done < "$PIDS"
        rm -f "$PIDS"
    fi
    for b in "$CTLD_PORT" "$SLURMD_PORT"; do
        port_taken "$b" && die 4 "port $b is taken (another Slurm on this machine?): set SLURMCTLD_PORT/SLURMD_PORT"
    done

    # A fresh state dir makes job ids restart at 1 and forgets old jobs.
    if [ "${KEEP_STATE:-0}" != 1 ]; then rm -rf "$BASE/state" "$BASE/spool"; fi
    mkdir -p "$BASE"/{etc,munge,state,spool/$NODE,run,log,tmp}
    : > "$PIDS"
    write_conf
    export SLURM_CONF=$CONF

    local t0=$SECONDS
    start_munge || { show_logs; cmd_stop > /dev/null; die 5 "munged did not answer on $SOCKET"; }
    slurmctld -D -i -f "$CONF" < /dev/null >> "$BASE/log/slurmctld.out" 2>&1 &
    echo "slurmctld $!" >> "$PIDS"
    slurmd -D -N "$NODE" -f "$CONF" < /dev/null >> "$BASE/log/slurmd.out" 2>&1 &
    echo "slurmd $!" >> "$PIDS"

    local i state=
    for ((i = 0; i < ${START_TIMEOUT:-30} * 10; i++)); do
        state=$(sinfo -h -n "$NODE" -o %t 2> /dev/null || true)
        [ "$state" = idle ] && break
        sleep 0.1
    done
    if [ "$state" != idle ]; then
        show_logs
        cmd_stop > /dev/null
        die 5 "node $NODE did not become idle within ${START_TIMEOUT:-30} s (state '${state:-none}')"
    fi
    say "up in $((SECONDS - t0)) s: node $NODE, $(nproc) CPUs, partition debug; logs in $BASE/log"
    echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
    if [ ! -f "$PIDS" ]; then
        say "not running (no $PIDS)"
        return 0
    fi
    export SLURM_CONF=$CONF
    # Cancel this cluster's jobs first, so that their processes end through Slurm and no
    # orphaned job step outlives the daemons.
    local jobs i
    jobs=$(squeue -h -o %i 2> /dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086 # one argument per job id
        scancel $jobs 2> /dev/null || true
        for ((i = 0; i < 150; i++)); do
            [ -z "$(squeue -h -o %i 2> /dev/null || true)" ] && break
            sleep 0.1
        done
    fi
    # TERM the recorded pids, newest first (slurmd, slurmctld, munged), then KILL stragglers.
    local name pid left
    local -a recorded=()
    while read -r name pid; do recorded=("$name $pid" "${recorded[@]}"); done < "$PIDS"
    for entry in "${recorded[@]}"; do
        read -r name pid <<< "$entry"
        if alive "$pid" "$name"; then kill -TERM "$pid" 2> /dev/null || true; fi
    done
    for ((i = 0; i < 100; i++)); do
        left=0
        for entry in "${recorded[@]}"; do
            read -r name pid <<< "$entry"
            if alive "$pid" "$name"; then left=1; fi
        done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for entry in "${recorded[@]}"; do
        read -r name pid <<< "$entry"
        if alive "$pid" "$name"; then
            say "$name ($pid) ignored TERM for 10 s: KILL"
            kill -KILL "$pid" 2> /dev/null || true
        fi
    done
    rm -f "$PIDS"
    say "stopped"
}

cmd_status() {
    [ -f "$PIDS" ] || { say "not running"; return 1; }
    local name pid rc=0
    while read -r name pid; do
        if alive "$pid" "$name"; then say "$name pid $pid running"; else say "$name pid $pid GONE"; rc=1; fi
    done < "$PIDS"
    SLURM_CONF=$CONF sinfo || rc=1
    echo "export SLURM_CONF=$CONF"
    return $rc
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die 2 "usage: $0 start|stop|status   (SLURM_BASE=${BASE})" ;;
esac
