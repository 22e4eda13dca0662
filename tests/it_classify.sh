#!/usr/bin/env bash
# The classification baseline end to end through the CLI: the issue's recipe (Adam, lr 1e-3,
# batch 64, 5 epochs) on the shipped 8,000/2,000 MNIST subset, with 1 rank and 2 ranks.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
check_run() { # DIR MODEL RANKS MIN_ACC
    local d=$1 s=$1/summary.json
    [ -f "$d/config.txt" ] || fail "$d/config.txt missing"
    grep -q "^model = $2$" "$d/config.txt" || fail "config.txt does not record model = $2"
    [ "$(wc -l < "$d/metrics.jsonl")" -eq 5 ] || fail "metrics.jsonl should have 5 epoch lines"
    for k in epoch train_loss test_loss test_acc images_per_s; do
        grep -q "\"$k\"" "$d/metrics.jsonl" || fail "metrics.jsonl lacks $k"
    done
    for k in test_acc test_loss images_per_s params world_size epochs; do
        [ -n "$(json_num "$s" $k)" ] || fail "summary.json lacks $k"
    done
    [ "$(json_num "$s" world_size)" = "$3" ] || fail "world_size should be $3"
    local acc; acc=$(json_num "$s" test_acc)
    ge "$acc" "$4" || fail "$2 with $3 rank(s): test_acc $acc < $4"
    ok "$2, $3 rank(s): test_acc $acc (>= $4), $(json_num "$s" images_per_s) images/s"
}
# Floors: on this 8,000-image subset the recipe's test accuracy varies by about +-0.4 points
# (standard deviation) with the seed, in dtrain and in PyTorch alike. With the default
# augmentation (bench/accuracy_seeds.sh 32), at 1 / 2 ranks: LeNet 95.95-98.15% / 96.90-98.20%,
# MLP 94.40-96.35% / 95.15-96.75%. The default seed gives LeNet 97.45% / 97.60% and the MLP
# 95.70% / 96.25%. The floors sit below those, so a change of rounding that moves a correct
# run by a seed's worth still passes, while a wrong gradient, a broken all-reduce, a bad
# shard or broken augmentation loses more.
for model in lenet mlp; do
    min=0.960; [ $model = mlp ] && min=0.945
    "${MPIRUN[@]}" -np 1 "$DTRAIN" classify --model $model --data "$DATA" --out "$TMP/$model-1" > "$TMP/log1"
    check_run "$TMP/$model-1" $model 1 $min
    "${MPIRUN[@]}" -np 2 "$DTRAIN" classify --model $model --data "$DATA" --out "$TMP/$model-2" > "$TMP/log2"
    check_run "$TMP/$model-2" $model 2 $min
    grep -q "confusion matrix" "$TMP/log2" || fail "no confusion matrix printed"
    grep -q "final test accuracy" "$TMP/log2" || fail "no final accuracy printed"
    [ "$(grep -c '^epoch ' "$TMP/log2")" -eq 5 ] || fail "rank 0 should print one line per epoch (and only rank 0)"
done
