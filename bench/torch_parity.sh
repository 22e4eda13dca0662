#!/usr/bin/env bash
# Step-for-step comparison of dtrain's classify job with PyTorch (bench/torch_parity.py) on
# the same weights, Adam state and batches (file order, --shuffle 0, no augmentation), for
# LeNet and the MLP:
#   1. one step at a time: dtrain checkpoints every step for STEPS steps; PyTorch restarts
#      from each checkpoint, takes the same step, and is compared with the next checkpoint.
#   2. four epochs at once: from dtrain's checkpoint after epoch 1, PyTorch trains epochs 2-5
#      on its own and is compared with dtrain's checkpoint and test accuracy each epoch.
#
#   bench/torch_parity.sh [STEPS=130]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-130}
[ -x build/dtrain ] || scripts/build.sh
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for model in lenet mlp; do
    echo "== $model: one step at a time, $STEPS steps"
    build/dtrain classify --model $model --shuffle 0 --augment_shift 0 --threads 1 --ckpt_interval 1 --ckpt_keep 0 \
        --max_steps "$STEPS" --out "$TMP/$model-steps" > /dev/null
    /usr/bin/python3 bench/torch_parity.py --run "$TMP/$model-steps" --data data/mnist.h5 --model $model \
        --restart --quiet
    echo "== $model: epochs 2-5 without restarts"
    build/dtrain classify --model $model --shuffle 0 --augment_shift 0 --threads 1 --ckpt_keep 0 --out "$TMP/$model-epochs" > /dev/null
    /usr/bin/python3 bench/torch_parity.py --run "$TMP/$model-epochs" --data data/mnist.h5 --model $model
done
