#!/usr/bin/env bash
# The whole `--device cuda` path of the trainer on the CUDA emulator (build/dtrain-emu: the
# real kernels/cuda and dist/nccl code over the emulated runtime, cuBLAS and NCCL, device
# memory the host cannot touch), against the CPU backend:
#   1. one step of each job, cuda against cpu: the loss, the gradient arena and the
#      parameters after an SGD step agree to 1e-5 (and a different batch does not);
#   2. data parallelism on cuda: 2 ranks x batch 32 == 1 rank x batch 64 (NCCL buckets);
#   3. a run stopped (a real SIGTERM, or the test hook's stop at a given step) and resumed on
#      cuda equals the straight cuda run to the bit, on 1 rank (diffusion with its EMA, gpt)
#      and on 2 ranks (gpt, classify);
#   4. a cpu checkpoint resumes on cuda and that one on cpu, ending where the cpu run ends;
#   5. sample and eval on cuda give what they give on cpu;
#   6. a hung NCCL all-reduce ends the job within comm_timeout, naming the rank.
source "$(dirname "$0")/lib.sh"
EMU=$BIN/dtrain-emu
[ -x "$EMU" ] || fail "$EMU not built (DTRAIN_CUDA_EMU=OFF?)"
MNIST=$(mnist_h5)
TXT=$(shakespeare_h5)
export OPENBLAS_NUM_THREADS=1
# small shapes: the emulator runs a GPU thread as a fiber, ~100x slower than the CPU backend
classify=(--data "$MNIST" --model mlp --batch_size 32 --threads 1)
gpt=(--data "$TXT" --n_layer 2 --n_head 2 --n_embd 32 --block_size 32 --batch_size 4 --warmup_steps 2
     --eval_iters 2 --threads 1)
diffusion=(--data "$MNIST" --channels 8 --channel_mult 1,2 --groups 4 --heads 2 --batch_size 8 --warmup_steps 1
           --eval_images 8 --preview_per_label 0 --threads 1)

# ---- 1. one step, cuda against cpu ------------------------------------------------------
STEP=$BIN/tests/one_step_emu
for job in classify gpt diffusion; do
    declare -n args=$job
    for dev in cpu cuda; do
        "$STEP" $job "${args[@]}" --optimizer sgd --lr 0.5 --device $dev --out "$TMP/s-$job-$dev" \
            --dump "$TMP/$job-$dev.bin" > "$TMP/log" || fail "$job one step on $dev: $(tail -n 3 "$TMP/log")"
    done
    grep -q "on dtrain CUDA emulator" "$TMP/log" || fail "$job: the cuda step did not run on the emulator"
    "$STEP" --compare "$TMP/$job-cuda.bin" "$TMP/$job-cpu.bin" 1e-5 > "$TMP/cmp" ||
        fail "$job: cuda differs from cpu: $(cat "$TMP/cmp")"
    ok "$job, one step: $(head -n 1 "$TMP/cmp")"
done
# the comparison can fail: another seed draws another batch
"$STEP" classify "${classify[@]}" --optimizer sgd --lr 0.5 --seed 2 --device cuda --out "$TMP/s-seed2" \
    --dump "$TMP/seed2.bin" > /dev/null
if "$STEP" --compare "$TMP/seed2.bin" "$TMP/classify-cpu.bin" 1e-5 > /dev/null; then
    fail "the comparison did not tell another batch apart"
fi

# ---- 2. data parallelism on cuda --------------------------------------------------------
EQ=$BIN/tests/mpi_equivalence_emu
eq=(--data "$MNIST" --model mlp --batch_size 64 --steps 5 --threads 1 --device cuda)
"${MPIRUN[@]}" -np 1 "$EQ" "${eq[@]}" --out "$TMP/eq1" --dump "$TMP/eq1.bin" > "$TMP/log" ||
    fail "equivalence, 1 rank: $(tail -n 3 "$TMP/log")"
"${MPIRUN[@]}" -np 2 "$EQ" "${eq[@]}" --out "$TMP/eq2" --dump "$TMP/eq2.bin" > "$TMP/log" ||
    fail "equivalence, 2 ranks: $(tail -n 3 "$TMP/log")"
"$EQ" --compare "$TMP/eq1.bin" "$TMP/eq2.bin" 1e-5 > "$TMP/cmp" || fail "2 ranks x 32 != 1 rank x 64 on cuda: $(cat "$TMP/cmp")"
ok "cuda: 2 ranks x batch 32 == 1 rank x batch 64 after 5 steps ($(tr '\n' ' ' < "$TMP/cmp"))"

# ---- 3. stopped and resumed on cuda, bit for bit ---------------------------------------
# stop_and_resume NP OUT HOW ARGS...: the run stopped at a step boundary (HOW = sigterm: a
# real SIGTERM once the step-2 checkpoint exists, to the one rank, started without mpirun
# (mpirun answers SIGTERM by killing its ranks; Slurm signals the ranks themselves); else
# DTRAIN_TEST_STOP_AT_STEP=HOW, the same stop at a known step), exit 75, then resumed
stop_and_resume() {
    local np=$1 out=$2 how=$3 pid rc=0
    shift 3
    if [ "$how" = sigterm ]; then
        [ "$np" -eq 1 ] || fail "test setup: a real SIGTERM is sent to a single-rank run"
        "$EMU" "$@" --out "$out" > "$out.log" 2>&1 &
        pid=$!
        for _ in $(seq 600); do
            [ -f "$out/checkpoints/ckpt-00000002.h5" ] && break
            kill -0 $pid 2> /dev/null || break
            sleep 0.1
        done
        kill -TERM $pid 2> /dev/null || true
        wait $pid || rc=$?
    else
        DTRAIN_TEST_STOP_AT_STEP=$how "${MPIRUN[@]}" -x DTRAIN_TEST_STOP_AT_STEP -np "$np" "$EMU" "$@" --out "$out" \
            > "$out.log" 2>&1 || rc=$?
    fi
    [ $rc -eq 75 ] || fail "$np rank(s): the stop ($how) should exit 75, got $rc: $(tail -n 3 "$out.log")"
    "${MPIRUN[@]}" -np "$np" "$EMU" "$@" --out "$out" --resume auto > "$out.log" 2>&1 ||
        fail "$np rank(s): the resume failed: $(tail -n 3 "$out.log")"
    grep -q "resumed from" "$out.log" || fail "$np rank(s): the second run did not resume"
}
resume_case() {
    local np=$1 job=$2 steps=$3 how=$4
    declare -n args=$job
    local run=("$job" "${args[@]}" --device cuda --max_steps "$steps" --ckpt_interval 2 --eval_interval "$steps"
               --log_interval 1)
    "${MPIRUN[@]}" -np "$np" "$EMU" "${run[@]}" --out "$TMP/$job-straight-$np" > "$TMP/log" 2>&1 ||
        fail "$job, $np rank(s), straight: $(tail -n 3 "$TMP/log")"
    grep -q "device cuda (GPU" "$TMP/log" || fail "$job: the run did not say it runs on cuda"
    stop_and_resume "$np" "$TMP/$job-stopped-$np" "$how" "${run[@]}"
    local last
    last=$(printf 'ckpt-%08d.h5' "$steps")
    same_state "$TMP/$job-straight-$np/checkpoints/$last" "$TMP/$job-stopped-$np/checkpoints/$last" ||
        fail "$job, $np rank(s): stopped ($how) and resumed on cuda differs from the straight run"
    ok "$job, $np rank(s): stopped ($how) + resumed on cuda == the straight run, bit for bit (step $steps)"
}
resume_case 1 diffusion 6 sigterm # ~1 s a step on the emulator: the signal lands mid-run
resume_case 1 gpt 8 3
resume_case 2 gpt 8 5
resume_case 2 classify 8 3

# ---- 4. cpu -> cuda -> cpu --------------------------------------------------------------
run=(gpt "${gpt[@]}" --max_steps 6 --ckpt_interval 2 --eval_interval 6 --log_interval 1)
"$EMU" "${run[@]}" --device cpu --out "$TMP/cpu" > /dev/null
rc=0
DTRAIN_TEST_STOP_AT_STEP=2 "$EMU" "${run[@]}" --device cpu --out "$TMP/mixed" > /dev/null || rc=$?
[ $rc -eq 75 ] || fail "cpu leg: expected exit 75, got $rc"
rc=0
DTRAIN_TEST_STOP_AT_STEP=4 "$EMU" "${run[@]}" --device cuda --out "$TMP/mixed" --resume auto > "$TMP/log" 2>&1 || rc=$?
[ $rc -eq 75 ] || fail "cuda leg from a cpu checkpoint: expected exit 75, got $rc: $(tail -n 3 "$TMP/log")"
grep -q "device cuda" "$TMP/log" || fail "the cuda leg did not run on cuda"
"$EMU" "${run[@]}" --device cpu --out "$TMP/mixed" --resume auto > "$TMP/log" 2>&1 ||
    fail "cpu leg from a cuda checkpoint: $(tail -n 3 "$TMP/log")"
# Adam moves each weight by up to lr = 1e-3 a step whatever the gradient's size, so a
# rounding-level gradient difference can move a weight by a part of that: 1e-4 absolute
h5diff -q -d 1e-4 "$TMP/cpu/checkpoints/ckpt-00000006.h5" "$TMP/mixed/checkpoints/ckpt-00000006.h5" /params /params ||
    fail "cpu -> cuda -> cpu ends away from the cpu run (1e-4)"
a=$(json_num "$TMP/cpu/summary.json" val_loss) b=$(json_num "$TMP/mixed/summary.json" val_loss)
ok "cpu -> cuda -> cpu checkpoints: step 6 parameters within 1e-4 (Adam, lr 1e-3) of the cpu run, val_loss $b vs $a"

# ---- 5. sample and eval on cuda ---------------------------------------------------------
ck=$TMP/gpt-straight-1/checkpoints/ckpt-00000008.h5
for dev in cpu cuda; do
    "$EMU" sample gpt --ckpt "$ck" --prompt "ROMEO:" --tokens 40 --seed 3 --device $dev > "$TMP/sample-$dev" 2> "$TMP/err-$dev" ||
        fail "sample gpt on $dev: $(cat "$TMP/err-$dev")"
    "$EMU" eval gpt --ckpt "$ck" --device $dev > "$TMP/eval-$dev" 2>&1 || fail "eval gpt on $dev: $(cat "$TMP/eval-$dev")"
done
grep -q "on cuda (GPU" "$TMP/err-cuda" || fail "sample did not say it runs on cuda"
cmp -s "$TMP/sample-cpu" "$TMP/sample-cuda" || fail "sample: cuda drew other tokens than cpu"
[ "$(grep val_loss "$TMP/eval-cpu")" = "$(grep val_loss "$TMP/eval-cuda")" ] ||
    fail "eval: cuda $(grep val_loss "$TMP/eval-cuda") against cpu $(grep val_loss "$TMP/eval-cpu")"
dck=$TMP/diffusion-straight-1/checkpoints/ckpt-00000004.h5
for dev in cpu cuda; do
    "$EMU" sample diffusion --ckpt "$dck" --label all --n 1 --steps 2 --seed 1 --out "$TMP/d-$dev.png" \
        --out-h5 "$TMP/d-$dev.h5" --device $dev \
        > "$TMP/log" 2>&1 || fail "sample diffusion on $dev: $(tail -n 3 "$TMP/log")"
done
# uint8 pixels: rounding may move one by a grey level, no more
h5diff -q -d 1 "$TMP/d-cpu.h5" "$TMP/d-cuda.h5" || fail "sample diffusion: cuda images differ from cpu by more than 1/255"
ok "sample and eval on cuda: gpt's tokens and val_loss as on cpu, diffusion's images within one grey level"

# ---- 6. a hung all-reduce --------------------------------------------------------------
rc=0
start=$(date +%s)
timeout 120 "${MPIRUN[@]}" -np 2 -x DTRAIN_EMU_NCCL_HANG_AT=3 "$EMU" classify "${classify[@]}" --device cuda \
    --max_steps 6 --comm_timeout 3 --out "$TMP/hang" > "$TMP/log" 2>&1 || rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 3 ] || fail "a hung NCCL all-reduce: exit $rc after $took s (expected 3, a communication error)"
grep -Eq "rank [01]/2: waiting for the all-reduce failed: not finished after 3 s .*comm_timeout" "$TMP/log" ||
    fail "no line naming the rank and the timeout: $(grep -v '^step' "$TMP/log" | head -n 5)"
ok "a hung NCCL all-reduce: exit $rc after $took s, $(grep -o 'rank [01]/2: waiting.*' "$TMP/log" | head -n 1)"
