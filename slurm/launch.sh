# Sourced by the slurm/*.sbatch scripts, not run: defines dtrain_launch.
#
#   dtrain_launch JOB ARGS...
#
# runs `dtrain JOB ARGS... --out RUN_DIR --threads T --resume auto` on every task of the
# allocation and makes the job survive preemption and time limits:
#
#   1. The trainer runs in the background and the batch shell `wait`s for it. Bash runs a
#      trap only when its foreground command returns, so with a foreground srun a USR1 sent
#      to the batch shell (`--signal=B:USR1@120`) would sit unhandled until the trainer ended.
#   2. USR1 or TERM to the batch shell is passed on to the launcher as USR1; srun and mpirun
#      both forward USR1 to every rank (mpirun would kill the ranks on TERM). The ranks stop
#      at the next step boundary, rank 0 writes a checkpoint, and dtrain exits 75.
#   3. Exit 75 after USR1 (Slurm's warning before the time limit, or
#      `scancel --batch --signal=USR1`) → `scontrol requeue $SLURM_JOB_ID`. The job keeps its
#      id, so RUN_DIR (made from the job name and id) is the same on the next start and
#      `--resume auto` picks up the newest checkpoint in it.
#      Exit 75 after TERM → no requeue from here. TERM means Slurm itself is ending the job:
#      `scancel` (requeueing would undo the user's cancel; `scontrol requeue` on a job being
#      cancelled succeeds), the time limit, or `scontrol requeue` / preemption in REQUEUE mode,
#      where Slurm requeues the job itself. Either way the checkpoint is written first.
#
# Environment (all optional; sbatch passes the submitting shell's environment to the job):
#   DTRAIN_HOME      the dtrain checkout (the sbatch scripts default it to the submit dir)
#   DTRAIN           the binary (default $DTRAIN_HOME/build/dtrain)
#   DTRAIN_LAUNCHER  srun (default: PMIx direct launch) or mpirun (Open MPI's Slurm support)
#   DTRAIN_ARGS      extra arguments, appended last so they override the script's
#   DTRAIN_RUNS      parent of the run directory (default runs, relative to the submit dir)
#   DTRAIN_OUT       the run directory itself (default $DTRAIN_RUNS/$SLURM_JOB_NAME-$SLURM_JOB_ID)
#   DTRAIN_REQUEUE   1 (default): requeue after a preemption; 0: just exit 75

_dtrain_log() { echo "[slurm $(date +%H:%M:%S)] $*"; }

# Trap handler: remember the signal (and that wait was cut short), ask the ranks to
# checkpoint and stop.
_dtrain_forward() {
    _dtrain_trapped=1
    _dtrain_signals+=" $1"
    _dtrain_log "batch shell got SIG$1: asking dtrain (launcher pid $_dtrain_pid) to checkpoint and stop"
    kill -USR1 "$_dtrain_pid" 2> /dev/null || true
}

dtrain_launch() {
    local job=$1
    shift
    : "${SLURM_JOB_ID:?dtrain_launch runs inside a Slurm job (submit the script with sbatch)}"
    local bin=${DTRAIN:-$DTRAIN_HOME/build/dtrain}
    [ -x "$bin" ] || { _dtrain_log "dtrain binary not found: $bin (set DTRAIN or DTRAIN_HOME)"; return 2; }

    # srun in 22.05 no longer inherits --cpus-per-task from the allocation: pass it on.
    local threads=${SLURM_CPUS_PER_TASK:-1}
    local out=${DTRAIN_OUT:-${DTRAIN_RUNS:-runs}/$SLURM_JOB_NAME-$SLURM_JOB_ID}
    local -a extra=()
    read -r -a extra <<< "${DTRAIN_ARGS:-}"

    # dtrain's kernels own the cores: OpenMP across a rank's threads, OpenBLAS single-threaded
    # inside each, so the two pools never oversubscribe the CPUs Slurm gave the task.
    export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1

    local -a launch
    case ${DTRAIN_LAUNCHER:-srun} in
        # --wait: once one rank has ended, give the others 60 s, then end the step, so a
        # crashed rank cannot leave its peers blocked in an all-reduce until the time limit.
        srun) launch=(srun --mpi=pmix --cpus-per-task="$threads" --wait=60) ;;
        mpirun) launch=(mpirun -np "$SLURM_NTASKS" --map-by "slot:PE=$threads") ;;
        *) _dtrain_log "DTRAIN_LAUNCHER must be srun or mpirun, not '$DTRAIN_LAUNCHER'"; return 2 ;;
    esac
    mkdir -p "$out"
    _dtrain_log "job $SLURM_JOB_ID ($SLURM_JOB_NAME) start $((${SLURM_RESTART_COUNT:-0} + 1))" \
        "(restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks on" \
        "${SLURM_JOB_NUM_NODES:-?} node(s), $threads thread(s) per task, launcher ${launch[0]}, run dir $out"

    _dtrain_trapped=0 _dtrain_signals=
    trap '_dtrain_forward USR1' USR1
    trap '_dtrain_forward TERM' TERM
    local t0
    t0=$(date +%s)
    "${launch[@]}" "$bin" "$job" "$@" --out "$out" --threads "$threads" --resume auto "${extra[@]}" &
    _dtrain_pid=$!

    # A trapped signal cuts `wait` short (status > 128) while the trainer is still writing its
    # checkpoint: wait again until the trainer itself has exited.
    local rc
    while :; do
        _dtrain_trapped=0
        rc=0
        wait "$_dtrain_pid" || rc=$?
        [ "$_dtrain_trapped" = 1 ] && [ "$rc" -gt 128 ] && continue
        break
    done

    case $rc in
        0)
            # srun can exit 0 when its tasks never started ("task 0 launch failed"): only a
            # summary.json written by this start shows that dtrain ran to the end.
            if [ ! -f "$out/summary.json" ] || [ "$(stat -c %Y "$out/summary.json")" -lt "$t0" ]; then
                _dtrain_log "${launch[0]} exited 0 but dtrain wrote no $out/summary.json: the tasks did not" \
                    "run to the end (see the ${launch[0]} lines above); not requeued"
                return 1
            fi
            _dtrain_log "dtrain finished: $out/summary.json"
            return 0
            ;;
        75)
            _dtrain_log "dtrain exited 75 (stopped by a signal, checkpoint written in $out/checkpoints)"
            case "$_dtrain_signals" in
                *TERM*)
                    _dtrain_log "not requeueing: SIGTERM means Slurm is ending job $SLURM_JOB_ID (scancel," \
                        "time limit, or a requeue/preemption it carries out itself); to continue later," \
                        "resubmit with DTRAIN_OUT=$out"
                    return 75
                    ;;
            esac
            [ "${DTRAIN_REQUEUE:-1}" = 1 ] || return 75
            # Requeueing our own job makes Slurm TERM this shell: nothing is left to forward.
            trap '' TERM USR1
            if scontrol requeue "$SLURM_JOB_ID"; then
                _dtrain_log "requeued job $SLURM_JOB_ID: the next start resumes from $out/checkpoints"
                return 0
            fi
            _dtrain_log "scontrol requeue $SLURM_JOB_ID failed: resubmit with DTRAIN_OUT=$out to resume"
            return 75
            ;;
        *)
            _dtrain_log "dtrain failed with exit code $rc (1 runtime, 2 usage/input, 3 MPI, 4 loss NaN/Inf;" \
                ">128 killed by a signal): not requeued"
            return "$rc"
            ;;
    esac
}
