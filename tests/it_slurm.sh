#!/usr/bin/env bash
# The slurm/ job scripts against a real Slurm: a private one-node cluster (slurmctld, slurmd,
# munged from Debian's packages, started by slurm/local-cluster.sh under $TMP), then
#   1. a LeNet job through slurm/train-1node.sbatch with 2 tasks: COMPLETED, accuracy floor;
#   2. the same job again, sent USR1 after its first epoch as Slurm does before a time
#      limit: it checkpoints, exits 75 and requeues itself; released from Slurm's 2-minute
#      hold, it resumes from the checkpoint and ends with parameters and Adam state identical,
#      to the bit, to an uninterrupted run of the same config started with plain mpirun;
#   3. slurm/train-multinode.sbatch squeezed onto the one node, launched with mpirun;
#   4. a job whose srun tasks never launch (srun exits 0 then): FAILED, not COMPLETED.
# Without Slurm (or with the ports taken by another cluster) it prints SKIP and passes,
# unless DTRAIN_REQUIRE_SLURM=1, where that is a failure.
source "$(dirname "$0")/lib.sh"

SLURM_BASE=$TMP/slurm
CLUSTER=$SRC/slurm/local-cluster.sh
cleanup() {
    SLURM_BASE=$SLURM_BASE "$CLUSTER" stop > /dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # so that a ctest timeout still stops the daemons

skip() {
    [ "${DTRAIN_REQUIRE_SLURM:-0}" = 1 ] && fail "Slurm is required here (DTRAIN_REQUIRE_SLURM=1): $*"
    echo "SKIP: $*"
    exit 0
}

for b in munged slurmctld slurmd sbatch srun squeue scontrol scancel sinfo; do
    command -v "$b" > /dev/null ||
        skip "the whole Slurm test because '$b' is not installed (apt-get install slurmctld slurmd slurm-client munge)"
done

# If the suite itself runs inside a Slurm job, that job's variables must not leak into ours.
for v in $(compgen -e); do
    case $v in SLURM_* | SBATCH_* | SRUN_* | SALLOC_*) unset "$v" ;; esac
done

# The jobs ask for 2 tasks x 1 CPU; a 1-CPU node would leave them pending forever.
[ "$(nproc)" -ge 2 ] || skip "the Slurm test because it needs 2 CPUs for its 2-task jobs, this machine has $(nproc)"

DATA=$(mnist_h5)
# 8 epochs: LeNet reaches ~97%, and after the 'epoch 1' line 7 epochs (0.2 s each on an idle
# 2-core box) remain for the signal to land; it lands within a few steps here.
EPOCHS=8
T0=$SECONDS

rc=0
SLURM_BASE=$SLURM_BASE "$CLUSTER" start > "$TMP/cluster.log" 2>&1 || rc=$?
case $rc in
    0) ;;
    4) skip "the Slurm test because the cluster cannot start: $(grep local-cluster "$TMP/cluster.log" | tail -n 1)" ;;
    *) cat "$TMP/cluster.log" >&2
       skip "the Slurm test because the cluster did not come up (local-cluster.sh exit $rc, logs above)" ;;
esac
export SLURM_CONF=$SLURM_BASE/etc/slurm.conf
ok "private Slurm cluster up in $((SECONDS - T0)) s ($(sinfo -h -o '%D node, %c CPUs, %t'))"

# The job scripts find the checkout and the binary through these; sbatch exports our
# environment (the OMPI root variables from lib.sh included) into the job.
export DTRAIN_HOME=$SRC DTRAIN
WORK=$TMP/jobs
mkdir -p "$WORK"
cd "$WORK" || exit 1

# submit SCRIPT SBATCH_OPTS...: prints the job id
submit() {
    local script=$1
    shift
    sbatch --parsable "$@" "$SRC/slurm/$script" 2> "$TMP/sbatch.err" ||
        fail "sbatch $script refused the job: $(cat "$TMP/sbatch.err")"
}

job_field() { scontrol show job "$1" | grep -o "\b$2=[^ ]*" | head -n 1 | cut -d= -f2; }

# job_failed JID MSG: the job's log and the controller's view, then fail
job_failed() {
    echo "---- job $1 log" >&2
    cat "$WORK"/*-"$1".out >&2 2> /dev/null || true
    echo "---- scontrol show job $1" >&2
    scontrol show job "$1" >&2 || true
    echo "---- slurmctld.log" >&2
    tail -n 20 "$SLURM_BASE/log/slurmctld.log" >&2 || true
    echo "---- slurmd.log" >&2
    tail -n 20 "$SLURM_BASE/log/slurmd.log" >&2 || true
    fail "job $1: $2"
}

# wait_gone JID SECONDS: poll squeue (sbatch --wait polls every ~10 s) until the job has left
wait_gone() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        [ -z "$(squeue -h -j "$1" 2> /dev/null)" ] && return 0
        sleep 0.2
    done
    job_failed "$1" "still in the queue after $2 s"
}

# wait_state JID STATE SECONDS: until squeue shows the job in STATE; fails at once if it ends
wait_state() {
    local i state
    for ((i = 0; i < $3 * 5; i++)); do
        state=$(squeue -h -j "$1" -o %T 2> /dev/null || true)
        [ "$state" = "$2" ] && return 0
        [ -z "$state" ] && job_failed "$1" "ended ($(job_field "$1" JobState)) instead of becoming $2"
        sleep 0.2
    done
    job_failed "$1" "not $2 after $3 s (state '$state')"
}

# Every job trains the same thing; the scripts' own defaults are for real clusters, so the
# size of the allocation is given on the command line (it beats the #SBATCH lines).
export DTRAIN_ARGS="--model lenet --data $DATA --epochs $EPOCHS"
ALLOC=(--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=00:10:00)
last=ckpt-$(printf %08d $((EPOCHS * 125))).h5 # 125 steps per epoch: 8,000 images, global batch 64

# ---- 1. a plain job: runs to the end, through srun --mpi=pmix -------------------------------
t=$SECONDS
jid=$(submit train-1node.sbatch "${ALLOC[@]}" --job-name=plain)
wait_gone "$jid" 120
state=$(job_field "$jid" JobState)
[ "$state" = COMPLETED ] || job_failed "$jid" "ended $state, exit $(job_field "$jid" ExitCode)"
run=$WORK/runs/plain-$jid
[ -f "$run/summary.json" ] || job_failed "$jid" "no $run/summary.json"
acc=$(json_num "$run/summary.json" test_acc)
ge "$acc" 0.96 || job_failed "$jid" "test_acc $acc < 0.96 after $EPOCHS epochs"
# the world dtrain found through PMIx: the allocation's 2 tasks, not 2 singletons
grep -q "2 ranks on 1 node .*launcher srun" plain-"$jid".out || job_failed "$jid" "dtrain was not started by srun"
grep -q "SLURM_NTASKS=2 SLURM_PROCID=0" plain-"$jid".out || job_failed "$jid" "no Slurm world line"
[ "$(json_num "$run/summary.json" world_size)" = 2 ] || job_failed "$jid" "world size is not 2"
ok "job $jid (train-1node.sbatch, 2 tasks via srun): COMPLETED, test_acc $acc, $((SECONDS - t)) s"

# ---- the reference: the same training without Slurm ------------------------------------------
t=$SECONDS
# shellcheck disable=SC2086 # DTRAIN_ARGS is a list of words, as the job script reads it
"${MPIRUN[@]}" -np 2 "$DTRAIN" classify $DTRAIN_ARGS --threads 1 --out "$TMP/reference" > "$TMP/reference.log" ||
    fail "the mpirun reference run failed: $(tail -n 5 "$TMP/reference.log")"
ref=$TMP/reference/checkpoints/$last
same_state "$ref" "$run/checkpoints/$last" || fail "srun and mpirun runs of the same config differ"
ok "reference run under plain mpirun: identical to job $jid ($((SECONDS - t)) s)"

# ---- 2. preempted after epoch 1, requeued, resumed ---------------------------------------------
t=$SECONDS
jid=$(submit train-1node.sbatch "${ALLOC[@]}" --job-name=preempted)
log=$WORK/preempted-$jid.out
wait_for "$log" "^epoch 1/" 60 || job_failed "$jid" "no 'epoch 1' line within 60 s"
# what --signal=B:USR1@120 does before the time limit, without waiting for one
scancel --batch --signal=USR1 "$jid"
# The script requeues the job itself; Slurm then holds it ~2 minutes (BeginTime) unless released.
wait_state "$jid" PENDING 60
# slurmd revokes the ended run's credential with one-second resolution: a restart allocated
# within the same second is killed with "Job credential revoked" (FAILED, exit 1).
sleep 2
scontrol update JobId="$jid" StartTime=now
wait_gone "$jid" 120
state=$(job_field "$jid" JobState)
[ "$state" = COMPLETED ] || job_failed "$jid" "ended $state, exit $(job_field "$jid" ExitCode)"
restarts=$(job_field "$jid" Restarts)
[ "$restarts" = 1 ] || job_failed "$jid" "Restarts=$restarts, expected 1"
grep -q "batch shell got SIGUSR1" "$log" || job_failed "$jid" "the batch script never saw USR1"
stop=$(sed -n 's/^stop requested by a signal at step \([0-9]*\).*/\1/p' "$log")
[ -n "$stop" ] || job_failed "$jid" "the trainer never stopped on the signal (signal too late?)"
grep -q "dtrain exited 75" "$log" || job_failed "$jid" "no exit 75 (preempted) in the log"
grep -q "requeued job $jid" "$log" || job_failed "$jid" "the script did not requeue itself"
grep -q "(restart 1)" "$log" || job_failed "$jid" "no second start in the log"
grep -q "resumed from .*ckpt-$(printf %08d "$stop").h5: step $stop," "$log" ||
    job_failed "$jid" "the second start did not resume from the step-$stop checkpoint"
run=$WORK/runs/preempted-$jid
same_state "$ref" "$run/checkpoints/$last" ||
    job_failed "$jid" "final state differs from the uninterrupted run"
ok "job $jid: USR1 after epoch 1 → checkpoint at step $stop, exit 75, requeued, Restarts=1, resumed," \
    "COMPLETED; final params + Adam state == uninterrupted mpirun run, to the bit ($((SECONDS - t)) s)"

# ---- 3. the multi-node script, on our one node, through mpirun -------------------------------
t=$SECONDS
jid=$(DTRAIN_LAUNCHER=mpirun DTRAIN_ARGS="$DTRAIN_ARGS --epochs 1" \
    submit train-multinode.sbatch "${ALLOC[@]}" --job-name=multi)
wait_gone "$jid" 120
state=$(job_field "$jid" JobState)
[ "$state" = COMPLETED ] || job_failed "$jid" "ended $state, exit $(job_field "$jid" ExitCode)"
grep -q "launcher mpirun" multi-"$jid".out || job_failed "$jid" "dtrain was not started by mpirun"
[ "$(json_num "$WORK/runs/multi-$jid/summary.json" world_size)" = 2 ] || job_failed "$jid" "world size is not 2"
ok "job $jid (train-multinode.sbatch on 1 node, 2 tasks via mpirun): COMPLETED ($((SECONDS - t)) s)"

# ---- 4. a step that never starts fails the job ------------------------------------------------
# A per-step PMIx directory left behind by a killed run (what once broke this test from /tmp)
# makes srun's launch fail while srun itself exits 0: the job script must not call that a
# finished run. The next job id follows the last one; the directory is made in its name.
t=$SECONDS
next=$((jid + 1))
mkdir -p "$SLURM_BASE/tmp/spmix_appdir_$(id -u)_$next.0"/{0,1}
jid=$(submit train-1node.sbatch "${ALLOC[@]}" --job-name=nolaunch)
[ "$jid" = "$next" ] || fail "job id $jid, expected $next"
wait_gone "$jid" 60
state=$(job_field "$jid" JobState)
[ "$state" = FAILED ] || job_failed "$jid" "a step that never launched ended $state, not FAILED"
grep -q "srun exited 0 but dtrain wrote no" nolaunch-"$jid".out || job_failed "$jid" "no line on the failed launch"
ok "job $jid: srun's tasks never launched (srun exit 0) → FAILED, exit $(job_field "$jid" ExitCode) ($((SECONDS - t)) s)"

echo "total $((SECONDS - T0)) s"
