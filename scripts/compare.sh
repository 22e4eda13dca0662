#!/usr/bin/env bash
# Predict beside create: trains the three jobs on the shipped data within a wall-time budget,
# then puts them side by side with `dtrain report`.
#
#   scripts/compare.sh [--budget-minutes N (10)] [--out DIR (runs/compare)]
#
# Each job first runs 4 steps to measure this machine's speed; the budget is then shared out
# as about 15% for three LeNet-5 seeds (the predicting side; the seeds give the spread), 20%
# for the GPT recipe (at most its 2,000 steps), 40% for the diffusion U-Net and 20% for the
# report's own sampling and judging, each with a floor (20, 20, 30 steps; 10 judged samples
# per digit) that a slow or busy machine may push past the budget. On an idle 2-core machine
# the default 10 minutes gives LeNet its 5 epochs, GPT about 2,000 steps and the U-Net about
# 3,000. All runs use 2 ranks. The report lands in DIR/report.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=10 out=runs/compare
while [ $# -gt 0 ]; do
    case $1 in
        --budget-minutes) budget=${2:?--budget-minutes needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option '$1' (expected --budget-minutes N, --out DIR)" >&2; exit 2 ;;
    esac
done
[[ $budget =~ ^[0-9]+$ ]] && [ "$budget" -ge 1 ] ||
    { echo "compare.sh: bad value '$budget' for --budget-minutes: expected a whole number of minutes >= 1" >&2; exit 2; }
[ -e "$out" ] && { echo "compare.sh: $out exists: remove it or give another --out" >&2; exit 2; }

scripts/install-deps.sh
scripts/build.sh > /dev/null
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
[ -f data/tinyshakespeare.h5 ] || build/dtrain prepare text --in data/tinyshakespeare.txt --out data/tinyshakespeare.h5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --oversubscribe -np 2 build/dtrain "$@" > /dev/null; }
start=$SECONDS
mkdir -p "$out"

# ms per step of JOB on this machine now: 4 steps, the second pair timed (the first warms up)
probe() {
    local job=$1 dir=$out/probe-$1
    shift
    run "$job" "$@" --max_steps 4 --log_interval 2 --out "$dir"
    grep -o '"ms_per_step": [0-9.]*' "$dir/metrics.jsonl" | tail -n 1 | sed 's/.*: //'
    rm -rf "$dir"
}
# steps that fit SHARE of the budget at MS per step, between LO and HI
fit() { awk -v t=$((budget * 60)) -v share="$1" -v ms="$2" -v lo="$3" -v hi="$4" \
    'BEGIN { s = int(share * t * 1000 / ms); print (s < lo ? lo : (s > hi ? hi : s)) }'; }

ms_c=$(probe classify --model lenet --eval_interval 1000)
ms_g=$(probe gpt --eval_interval 1000 --eval_iters 1)
ms_d=$(probe diffusion --eval_interval 1000 --eval_images 8 --preview_per_label 1 --preview_steps 1)
c_steps=$(fit 0.05 "$ms_c" 20 625)    # each of 3 seeds; 625 steps = the recipe's 5 epochs
g_steps=$(fit 0.20 "$ms_g" 20 2000)
d_steps=$(fit 0.40 "$ms_d" 30 1000000)
# the judge: per sample, 2 x 20 U-Net passes of one image, a step being 64 images x 3 passes
per_label=$(awk -v t=$((budget * 60)) -v ms="$ms_d" \
    'BEGIN { s = int(0.12 * t / (10 * 40 * ms / 1000 / 192)); print (s < 10 ? 10 : (s > 100 ? 100 : s)) }')
echo "measured ms/step: LeNet $ms_c, GPT $ms_g, U-Net $ms_d; budget $budget min: 3 LeNet-5 runs of $c_steps steps," \
     "GPT $g_steps steps, diffusion $d_steps steps, judge $per_label samples per digit"

for seed in 0 1 2; do
    run classify --model lenet --seed $seed --max_steps "$c_steps" --log_interval $((c_steps / 25 + 1)) \
        --out "$out/lenet-s$seed"
done
run gpt --max_steps "$g_steps" --warmup_steps $((g_steps / 20)) --eval_interval $((g_steps / 4)) --eval_iters 50 \
    --log_interval $((g_steps / 40 + 1)) --ckpt_interval "$g_steps" --out "$out/gpt"
run diffusion --max_steps "$d_steps" --warmup_steps $((d_steps / 20)) --eval_interval $((d_steps / 8)) \
    --log_interval $((d_steps / 40 + 1)) --ckpt_interval "$d_steps" --preview_steps 20 --out "$out/diffusion"
echo "training took $((SECONDS - start)) s"
build/dtrain report "$out/lenet-s0" "$out/lenet-s1" "$out/lenet-s2" "$out/gpt" "$out/diffusion" \
    --out "$out/report" --per-label "$per_label" --steps 20 --tokens 300
echo "all took $((SECONDS - start)) s; open $out/report/report.md"
