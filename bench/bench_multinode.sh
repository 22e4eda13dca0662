#!/usr/bin/env bash
# The gradient all-reduce across hosts (issue 16): GPT and diffusion with one rank per host on
# 2 and 3 hosts made of network namespaces joined by a bridge (tests/netns.sh; MPI over TCP).
#
#   bench/bench_multinode.sh [STEPS=20]
#
# For each model and host count: dtrain trains STEPS steps (1 thread per rank) and reports,
# through DTRAIN_COMM_STATS, the time of its gradient all-reduces (waiting for the slowest
# rank included); the step time is train_time_s / steps from summary.json. Then, on the same
# hosts and the same buffer size, build/bench_allreduce_rate times MPI_Allreduce (Open MPI's
# tuned collective), MPI_Iallreduce polled, and MPI_Iallreduce polled yielding the core
# between polls (what dtrain does when comm_timeout > 0), back to back.
# Printed per line: all-reduce ms per step, its share of the step, the three references, and
# dtrain's all-reduce time over the fastest of them on the same buffer (1.0 = as fast as MPI
# alone; above 1 by the time dtrain's all-reduce waits for the slowest rank to finish its
# backward pass). Where the cores are oversubscribed, MPI's busy-waiting methods compete with
# the other ranks for them, and the yielding one is the fastest.
# Needs root (network namespaces). The bridge is a software switch: its bandwidth is the
# machine's memory and cores, not a NIC's; on a shared machine the figures move with the load.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
DTRAIN_SOURCE_DIR=$PWD DTRAIN_BINARY_DIR=$PWD/build
export DTRAIN_SOURCE_DIR DTRAIN_BINARY_DIR
[ -x build/dtrain ] && [ -x build/bench_allreduce_rate ] || scripts/build.sh
source tests/lib.sh
source tests/netns.sh
[ -f data/tinyshakespeare.h5 ] || build/dtrain prepare text --in data/tinyshakespeare.txt --out data/tinyshakespeare.h5
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
net_up 3

declare -A KEYS=(
    [gpt]="--data $PWD/data/tinyshakespeare.h5 --eval_iters 1"
    [diffusion]="--data $PWD/data/mnist.h5 --eval_images 1 --preview_per_label 0 --batch_size 66"
)
printf '%-9s %5s %8s %8s %9s %6s %9s %10s %10s %6s\n' model hosts floats step_ms allred_ms share \
    mpi_ar_ms mpi_iar_ms mpi_iary_ms ratio
for model in gpt diffusion; do
    for hosts in 2 3; do
        out=$TMP/$model$hosts
        # shellcheck disable=SC2086 # KEYS holds lists of words
        net_mpirun --hostfile "$NET_HOSTFILE" -np $hosts --map-by node -x DTRAIN_COMM_STATS=1 \
            "$DTRAIN" $model ${KEYS[$model]} --max_steps "$STEPS" --eval_interval 0 --threads 1 \
            --out "$out" > "$out.log" 2>&1 || { cat "$out.log"; fail "$model on $hosts hosts failed"; }
        stats=$(grep "comm stats" "$out.log") || fail "no comm stats from $model"
        floats=$(echo "$stats" | sed 's/.* of \([0-9]*\) floats.*/\1/')
        ar_ms=$(echo "$stats" | sed 's/.*: \([0-9.]*\) ms each.*/\1/')
        step_ms=$(awk -v t="$(json_num "$out/summary.json" train_time_s)" -v s="$STEPS" 'BEGIN { printf "%.1f", 1e3 * t / s }')
        net_mpirun --hostfile "$NET_HOSTFILE" -np $hosts --map-by node "$BIN/bench_allreduce_rate" "$floats" 20 \
            > "$out.ar" 2>&1 || { cat "$out.ar"; fail "bench_allreduce_rate failed"; }
        mpi_ms=$(sed -n 's/^MPI_Allreduce: .*: \([0-9.]*\) ms.*/\1/p' "$out.ar")
        impi_ms=$(sed -n 's/^MPI_Iallreduce+MPI_Test: .*: \([0-9.]*\) ms.*/\1/p' "$out.ar")
        yield_ms=$(sed -n 's/^MPI_Iallreduce+MPI_Test+yield: .*: \([0-9.]*\) ms.*/\1/p' "$out.ar")
        awk -v m=$model -v h=$hosts -v f="$floats" -v s="$step_ms" -v a="$ar_ms" -v r="$mpi_ms" -v i="$impi_ms" \
            -v y="$yield_ms" 'BEGIN { printf "%-9s %5d %8d %8.1f %9.2f %5.1f%% %9.2f %10.2f %10.2f %6.2f\n",
                                     m, h, f, s, a, 100 * a / s, r, i, y, a / min3(r, i, y) }
            function min3(x, y, z) { return x < y ? (x < z ? x : z) : (y < z ? y : z) }'
    done
done
echo "load: $(cut -d ' ' -f 1-3 /proc/loadavg) on $(nproc) cores; $STEPS steps per run, 1 rank per host, 1 thread per rank"
