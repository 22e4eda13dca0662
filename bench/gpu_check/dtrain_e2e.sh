#!/usr/bin/env bash
# bench/gpu_check/dtrain_e2e.sh: dtrain itself on cuda, end to end (bench/gpu_check.sh's
# step 10; issue 15, items 1-4), for a dtrain built with CUDA, or build/dtrain-emu.
#
#   bench/gpu_check/dtrain_e2e.sh DTRAIN WORKDIR        (E2E_TINY=1: the emulator's shapes)
#
# For each job (classify LeNet, gpt char-level, diffusion U-Net), on --device cuda:
#   - N steps straight, with a checkpoint at N/2 and N; the start-up line must name the GPU
#     and the gradient reducer; the logged losses finite;
#   - the same N steps stopped at N/2 (DTRAIN_TEST_STOP_AT_STEP: the stop a SIGTERM makes,
#     at a chosen step: exit 75 after the checkpoint) and resumed with --resume auto: the
#     final checkpoint equal to the straight run's, group by group (h5diff: parameters,
#     optimizer state, job state, EMA; without HDF5's tools only the losses, saying so),
#     and every logged loss equal: resume is bit-exact;
# then: a cpu checkpoint resumed on cuda (classify), `dtrain sample` on cuda (gpt,
# diffusion), and with mpirun and two GPUs, gpt for N2 steps on 2 ranks on cuda (gradients
# by NCCL) against the same 2 ranks on cpu (each logged loss within 1e-3 relative).
# Exit status: 0 every check passed, 1 one failed, 2 bad usage.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DTRAIN WORKDIR" >&2; exit 2; }
DTRAIN=$1
WORK=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$DTRAIN" ] || { echo "dtrain_e2e: $DTRAIN: not an executable" >&2; exit 2; }
mkdir -p "$WORK" || exit 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failed=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; failed=1; }

# the runs' sizes: a job's recipe for a GPU (seconds there), tiny ones for the emulator
if [ "${E2E_TINY:-0}" = 1 ]; then
    N=4 N2=4
    classify=(--model lenet --batch_size 16)
    gpt=(--n_layer 2 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --eval_iters 2)
    diffusion=(--channels 8 --channel_mult 1,2 --groups 4 --heads 2 --batch_size 4 --eval_images 4
               --preview_per_label 0)
    sample_diffusion=(--n 1 --steps 2)
else
    N=200 N2=50
    classify=(--model lenet)
    gpt=(--eval_iters 8)
    diffusion=(--eval_images 64 --preview_per_label 1 --preview_steps 20)
    sample_diffusion=(--n 2 --steps 20)
fi
H=$((N / 2))
step8=$(printf '%08d' $N)

# same_state A B: every group of two checkpoints identical to the bit (as tests/lib.sh)
same_state() {
    local g
    for g in $(h5ls "$1" | awk '$2 == "Group" { print $1 }'); do
        h5diff -q "$1" "$2" "/$g" "/$g" || { echo "    /$g differs"; return 1; }
    done
}
# the logged lines without timings
losses() { sed -E 's/"([a-z_]+_per_s|[a-z_]+_time_s|ms_per_step)": [^,}]*(, )?//g' "$1"; }

# ---- data: prepared by dtrain from the repository's data/ ----------------------------------
MNIST=$WORK/mnist.h5
TEXT=$WORK/tinyshakespeare.h5
"$DTRAIN" prepare mnist --idx "$SRC/data/mnist" --out "$MNIST" >"$WORK/prepare.txt" 2>&1 &&
    "$DTRAIN" prepare text --in "$SRC/data/tinyshakespeare.txt" --out "$TEXT" >>"$WORK/prepare.txt" 2>&1 ||
    { cat "$WORK/prepare.txt"; echo "FAIL dtrain prepare"; exit 1; }

have_h5diff=1
command -v h5diff >/dev/null && command -v h5ls >/dev/null || have_h5diff=0

# set_args JOB: the arguments of a run of JOB (without --out) into args
set_args() {
    local -n extra=$1
    local data=$MNIST
    [ "$1" = gpt ] && data=$TEXT
    args=(--data "$data" --device cuda --max_steps $N --ckpt_interval $H --eval_interval $N
          --log_interval 1 "${extra[@]}")
}

for job in classify gpt diffusion; do
    set_args $job
    d=$WORK/$job
    rm -rf "$d" "$d.resumed"
    t0=$(date +%s%N)
    "$DTRAIN" $job "${args[@]}" --out "$d" >"$d.log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [ $rc -ne 0 ]; then
        tail -n 20 "$d.log" | sed 's/^/    /'
        bad "$job: $N steps on cuda exited $rc"
        continue
    fi
    head -n 1 "$d.log" | sed 's/^/    /'
    grep -q "device cuda (GPU [0-9]*: .*gradients by" "$d.log" ||
        bad "$job: the start-up line does not name the GPU and the gradient reducer"
    if grep -qiE '"loss": (nan|-?inf)' "$d/metrics.jsonl"; then bad "$job: a loss is not finite"; fi
    first=$(grep -m1 -o '"loss": [-0-9.eE+]*' "$d/metrics.jsonl" | sed 's/.*: //')
    last=$(grep -o '"loss": [-0-9.eE+]*' "$d/metrics.jsonl" | tail -n 1 | sed 's/.*: //')
    ok "$job: $N steps on cuda in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (start-up and evaluation included), loss $first -> $last"

    # stopped at N/2 as a SIGTERM stops it, resumed: bit-exact
    rc=0
    DTRAIN_TEST_STOP_AT_STEP=$H "$DTRAIN" $job "${args[@]}" --out "$d.resumed" >"$d.stop.log" 2>&1 || rc=$?
    [ $rc -eq 75 ] || { tail -n 5 "$d.stop.log"; bad "$job: a stop at step $H should exit 75, got $rc"; continue; }
    "$DTRAIN" $job "${args[@]}" --out "$d.resumed" --resume auto >"$d.resume.log" 2>&1 ||
        { tail -n 20 "$d.resume.log"; bad "$job: the resume on cuda failed"; continue; }
    grep -q "resumed from .*: step $H" "$d.resume.log" || bad "$job: did not resume from step $H"
    a=$d/checkpoints/ckpt-$step8.h5 b=$d.resumed/checkpoints/ckpt-$step8.h5
    if ! diff <(losses "$d/metrics.jsonl") <(losses "$d.resumed/metrics.jsonl") >/dev/null; then
        bad "$job: stopped at $H and resumed on cuda, the logged losses differ"
    elif [ $have_h5diff = 0 ]; then
        ok "$job: stop at step $H + resume on cuda == $N steps straight in every logged loss (the checkpoints not compared: no h5diff, HDF5's tools, here)"
    elif ! same_state "$a" "$b"; then
        bad "$job: stopped at $H and resumed on cuda, the checkpoint at $N differs from the straight run's"
    else
        ok "$job: stop at step $H + resume on cuda == $N steps straight, to the bit (h5diff of every group; every logged loss)"
    fi
done

# a cpu checkpoint resumed on cuda (issue 15, item 4)
set_args classify
d=$WORK/classify.cpu_to_cuda
rm -rf "$d"
rc=0
DTRAIN_TEST_STOP_AT_STEP=$H "$DTRAIN" classify "${args[@]}" --device cpu --out "$d" >"$d.log" 2>&1 || rc=$?
if [ $rc -ne 75 ]; then
    bad "classify: $H steps on cpu should stop with 75, got $rc"
elif ! "$DTRAIN" classify "${args[@]}" --out "$d" --resume auto >"$d.resume.log" 2>&1; then
    tail -n 20 "$d.resume.log"
    bad "classify: a cpu checkpoint did not resume on cuda"
else
    ok "classify: a cpu checkpoint of step $H resumed on cuda to step $N"
fi

# sampling on cuda, from the runs above
if [ -f "$WORK/gpt/checkpoints/ckpt-$step8.h5" ]; then
    if "$DTRAIN" sample gpt --ckpt "$WORK/gpt/checkpoints/ckpt-$step8.h5" --prompt "ROMEO:" --tokens 40 \
        --seed 1 --device cuda >"$WORK/sample_gpt.txt" 2>&1; then
        ok "gpt: sample on cuda: $(head -c 60 "$WORK/sample_gpt.txt" | tr '\n' ' ')"
    else
        cat "$WORK/sample_gpt.txt"; bad "gpt: dtrain sample on cuda failed"
    fi
fi
if [ -f "$WORK/diffusion/checkpoints/ckpt-$step8.h5" ]; then
    if "$DTRAIN" sample diffusion --ckpt "$WORK/diffusion/checkpoints/ckpt-$step8.h5" --label 3 \
        "${sample_diffusion[@]}" --seed 1 --device cuda --out "$WORK/sample_diffusion.png" \
        >"$WORK/sample_diffusion.txt" 2>&1 && [ -s "$WORK/sample_diffusion.png" ]; then
        ok "diffusion: sample on cuda into $WORK/sample_diffusion.png"
    else
        cat "$WORK/sample_diffusion.txt"; bad "diffusion: dtrain sample on cuda failed"
    fi
fi

# two ranks, one GPU each, gradients by NCCL, against the same two ranks on cpu (each rank
# draws its own batches from its shard, so 2 ranks are compared with 2 ranks)
gpus=${E2E_GPUS:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')}
if ! command -v mpirun >/dev/null; then
    echo "note: no mpirun: gpt on 2 ranks (NCCL) not run"
elif [ "${gpus:-0}" -lt 2 ]; then
    echo "note: ${gpus:-0} GPU(s): gpt on 2 ranks (NCCL) needs 2, not run"
else
    set_args gpt
    args+=(--max_steps $N2 --ckpt_interval $N2 --eval_interval $N2)
    d=$WORK/gpt.np2
    rm -rf "$d" "$d.cpu"
    if ! mpirun --oversubscribe -np 2 "$DTRAIN" gpt "${args[@]}" --out "$d" >"$d.log" 2>&1; then
        tail -n 20 "$d.log"; bad "gpt: 2 ranks on cuda failed"
    elif ! mpirun --oversubscribe -np 2 "$DTRAIN" gpt "${args[@]}" --device cpu --out "$d.cpu" >"$d.cpu.log" 2>&1; then
        tail -n 20 "$d.cpu.log"; bad "gpt: 2 ranks on cpu failed"
    else
        head -n 1 "$d.log" | sed 's/^/    /'
        grep -q "2 ranks.*gradients by NCCL" "$d.log" || bad "gpt, 2 ranks: the start-up line does not say NCCL"
        worst=$(paste <(grep -o '"loss": [-0-9.eE+]*' "$d.cpu/metrics.jsonl" | sed 's/.*: //') \
                      <(grep -o '"loss": [-0-9.eE+]*' "$d/metrics.jsonl" | sed 's/.*: //') |
                awk '{ r = ($1 - $2) / $1; if (r < 0) r = -r; if (r > w) w = r; n++ }
                     END { if (n == 0) print "none"; else printf "%.2e\n", w }')
        if [ "$worst" = none ] || awk -v w="$worst" 'BEGIN { exit !(w > 1e-3) }'; then
            bad "gpt: 2 ranks on cuda against 2 on cpu, $N2 steps: largest relative loss difference $worst (tolerance 1e-3)"
        else
            ok "gpt: 2 ranks on cuda (NCCL) against 2 ranks on cpu, $N2 steps: every loss within $worst relative"
        fi
    fi
fi
exit $failed
