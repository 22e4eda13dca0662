#!/usr/bin/env bash
# The diffusion job end to end on a small U-Net: data-parallel training with the EMA,
# bit-exact resume (EMA included), sampling to PNG and HDF5, and evaluation by a LeNet judge.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
small=(--data "$DATA" --channels 8 --channel_mult 1,2 --groups 4 --heads 2 --batch_size 32 --max_steps 30
       --warmup_steps 5 --eval_interval 15 --eval_images 64 --log_interval 10 --ckpt_interval 10
       --preview_per_label 1 --preview_steps 4 --threads 1)

for np in 1 2; do
    "${MPIRUN[@]}" -np $np "$DTRAIN" diffusion "${small[@]}" --out "$TMP/d$np" > "$TMP/log$np"
    s=$TMP/d$np/summary.json
    loss=$(json_num "$s" val_loss)
    # an untrained net predicts noise with MSE about 1; 30 steps bring it well below
    ge 0.6 "$loss" || fail "$np rank(s): val_loss $loss after 30 steps"
    [ -f "$TMP/d$np/samples/preview.png" ] || fail "no preview PNG"
    h5ls "$TMP/d$np/checkpoints/ckpt-00000030.h5" | grep -q "^ema" || fail "the EMA is not in the checkpoint"
    ok "$np rank(s): 30 steps, val_loss $loss, $(json_num "$s" images_per_s) images/s"
done

rc=0
DTRAIN_TEST_STOP_AT_STEP=15 "$DTRAIN" diffusion "${small[@]}" --out "$TMP/r" > /dev/null || rc=$?
[ $rc -eq 75 ] || fail "stop should exit 75, got $rc"
"$DTRAIN" diffusion "${small[@]}" --out "$TMP/r" --resume auto > /dev/null
same_state "$TMP/d1/checkpoints/ckpt-00000030.h5" "$TMP/r/checkpoints/ckpt-00000030.h5" ||
    fail "resumed diffusion run differs (params, Adam state or EMA)"
ok "stop at step 15 + resume == 30 steps straight, to the bit (params, Adam state, EMA)"

ck=$TMP/d1/checkpoints/ckpt-00000030.h5
"$DTRAIN" sample diffusion --ckpt "$ck" --label all --n 2 --steps 4 --guidance 2 --seed 1 \
    --out "$TMP/grid.png" --out-h5 "$TMP/grid.h5" > /dev/null
[ "$(head -c 8 "$TMP/grid.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "not a PNG"
h5ls "$TMP/grid.h5" | grep -q "images .*{20, 28, 28, 1}" || fail "the HDF5 samples have the wrong shape"
"$DTRAIN" sample diffusion --ckpt "$ck" --label 3 --n 2 --steps 4 --seed 1 --out "$TMP/a.png" > /dev/null
"$DTRAIN" sample diffusion --ckpt "$ck" --label 3 --n 2 --steps 4 --seed 1 --out "$TMP/b.png" > /dev/null
cmp -s "$TMP/a.png" "$TMP/b.png" || fail "sampling with one seed is not reproducible"
ok "sample: a 10-row PNG grid and 20 images in HDF5; same seed, same picture"

"$DTRAIN" classify --data "$DATA" --model lenet --epochs 1 --out "$TMP/judge" > /dev/null
"$DTRAIN" eval diffusion --ckpt "$ck" --classifier "$TMP/judge/checkpoints/ckpt-00000125.h5" \
    --n-per-label 4 --steps 4 --out-json "$TMP/eval.json" > "$TMP/eval.log"
for k in cond_acc cond_acc_9 fd_generated fd_floor_train_vs_test fd_trivial_baseline; do
    [ -n "$(json_num "$TMP/eval.json" $k)" ] || fail "eval.json lacks $k"
done
floor=$(json_num "$TMP/eval.json" fd_floor_train_vs_test)
trivial=$(json_num "$TMP/eval.json" fd_trivial_baseline)
ge "$trivial" "$floor" || fail "the trivial baseline ($trivial) should be far above the floor ($floor)"
ok "eval: accuracy $(json_num "$TMP/eval.json" cond_acc), FD $(json_num "$TMP/eval.json" fd_generated) (floor $floor, trivial $trivial)"
