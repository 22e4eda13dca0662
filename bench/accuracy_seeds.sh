#!/usr/bin/env bash
# Test accuracy of the classification recipe (Adam, lr 1e-3, global batch 64, 5 epochs) over
# several seeds: dtrain with 1 rank and with 2 ranks, and PyTorch (bench/torch_classify.py)
# on the same HDF5 data, both with the same augmentation (training images moved by up to
# SHIFT pixels; dtrain's default augment_shift is 1, 0 turns it off). Prints every run and
# the mean/min/max per column.
#
#   bench/accuracy_seeds.sh [SEEDS=8] [FIRST=0] [SHIFT=1]     (seeds FIRST .. FIRST+SEEDS-1)
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-8}
FIRST=${2:-0}
SHIFT=${3:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/dtrain ] || scripts/build.sh
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
acc() { grep -o '"test_acc": [0-9.]*' "$1" | head -n 1 | sed 's/.*: //'; }

for model in lenet mlp; do
    printf '%-6s %5s %10s %10s %10s\n' model seed dtrain-1 dtrain-2 pytorch
    for seed in $(seq "$FIRST" $((FIRST + SEEDS - 1))); do
        rm -rf "$TMP/a" "$TMP/b"
        build/dtrain classify --model $model --seed "$seed" --augment_shift "$SHIFT" --out "$TMP/a" > /dev/null
        mpirun -np 2 build/dtrain classify --model $model --seed "$seed" --augment_shift "$SHIFT" --out "$TMP/b" > /dev/null
        /usr/bin/python3 bench/torch_classify.py --model $model --data data/mnist.h5 --epochs 5 \
            --seed "$seed" --augment-shift "$SHIFT" --torch-threads 1 --openblas-threads 1 > "$TMP/t.json"
        printf '%-6s %5d %10s %10s %10s\n' $model "$seed" "$(acc "$TMP/a/summary.json")" \
            "$(acc "$TMP/b/summary.json")" "$(acc "$TMP/t.json")"
    done | tee "$TMP/$model.txt"
    awk -v m=$model '{ for (i = 3; i <= 5; i++) { s[i] += $i; if (NR == 1 || $i < lo[i]) lo[i] = $i; if ($i > hi[i]) hi[i] = $i } }
        END { printf "%-6s  mean %10.4f %10.4f %10.4f\n%-6s  min  %10.4f %10.4f %10.4f\n%-6s  max  %10.4f %10.4f %10.4f\n",
              m, s[3]/NR, s[4]/NR, s[5]/NR, m, lo[3], lo[4], lo[5], m, hi[3], hi[4], hi[5] }' "$TMP/$model.txt"
done
