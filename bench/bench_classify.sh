#!/usr/bin/env bash
# Images/s of dtrain against PyTorch on the same MNIST data, batch, optimizer and cores,
# measured in one run. Each side is taken at its best setting on the machine's cores:
#   dtrain:  1 rank x T threads, and R ranks x 1 thread (mpirun), R*T = cores
#   PyTorch: torch threads x OpenBLAS threads in {1,2}^2 (Debian's python3-torch)
# Both sides do the same work: dtrain's augmentation is off (--augment_shift 0), as the
# PyTorch script trains on the images as they are.
# Each setting runs REPEATS times for EPOCHS epochs; the best images/s counts (training
# loop only; evaluation and data loading are excluded on both sides). Warm-up is excluded on
# both sides too: PyTorch runs 5 untimed steps first; dtrain's rate is taken over the epochs
# after the first (its first steps start the thread pool and, without mpirun, share the cores
# with Open MPI's singleton daemon starting up: ~0.1 s once, a large part of a short run).
#
#   bench/bench_classify.sh [EPOCHS=3] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-3}
[ "$EPOCHS" -ge 2 ] || { echo "bench_classify: EPOCHS must be at least 2 (the first is warm-up)" >&2; exit 2; }
REPEATS=${2:-3}
CORES=$(nproc)
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/dtrain ] || scripts/build.sh
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

num() { grep -o "\"$2\": [-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: //'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

dtrain_run() { # MODEL RANKS THREADS → images/s
    local out=$TMP/run
    rm -rf "$out"
    if [ "$2" -eq 1 ]; then
        build/dtrain classify --model "$1" --epochs "$EPOCHS" --threads "$3" --augment_shift 0 --out "$out" >/dev/null
    else
        mpirun --oversubscribe -np "$2" build/dtrain classify --model "$1" --epochs "$EPOCHS" \
            --threads "$3" --augment_shift 0 --out "$out" >/dev/null
    fi
    # images over time of the epochs after the first (each line: images_per_s, epoch_time_s)
    sed -n 's/.*"images_per_s": \([-0-9.eE+]*\),.*"epoch_time_s": \([-0-9.eE+]*\).*/\1 \2/p' \
        "$out/metrics.jsonl" |
        awk 'NR > 1 { n += $1 * $2; t += $2 } END { if (t > 0) printf "%.1f\n", n / t; else print 0 }'
}

torch_run() { # MODEL TORCH_THREADS OPENBLAS_THREADS → images/s
    $PY bench/torch_classify.py --model "$1" --data data/mnist.h5 --epochs "$EPOCHS" \
        --torch-threads "$2" --openblas-threads "$3" > "$TMP/torch.json"
    num "$TMP/torch.json" images_per_s
}

printf '%-6s %-28s %12s\n' model setting images/s
for model in lenet mlp; do
    best_d=0; best_d_name=; best_t=0; best_t_name=
    for setting in "1 $CORES" "$CORES 1"; do
        set -- $setting
        b=0
        for _ in $(seq "$REPEATS"); do b=$(max "$b" "$(dtrain_run $model "$1" "$2")"); done
        printf '%-6s %-28s %12.0f\n' $model "dtrain $1 rank(s) x $2 thr" "$b"
        if awk -v a="$b" -v c="$best_d" 'BEGIN { exit !(a > c) }'; then best_d=$b; best_d_name="$1x$2"; fi
    done
    for tt in 1 2; do
        for ot in 1 2; do
            b=0
            for _ in $(seq "$REPEATS"); do b=$(max "$b" "$(torch_run $model $tt $ot)"); done
            printf '%-6s %-28s %12.0f\n' $model "torch $tt thr + openblas $ot" "$b"
            if awk -v a="$b" -v c="$best_t" 'BEGIN { exit !(a > c) }'; then best_t=$b; best_t_name="$tt+$ot"; fi
        done
    done
    awk -v m=$model -v d="$best_d" -v t="$best_t" -v dn="$best_d_name" -v tn="$best_t_name" \
        'BEGIN { printf "%-6s RESULT dtrain %.0f images/s (%s) vs PyTorch %.0f (%s): ratio %.2fx\n", m, d, dn, t, tn, d / t }'
done
