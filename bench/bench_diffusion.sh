#!/usr/bin/env bash
# Training images/s of the diffusion U-Net (382,721 parameters) in dtrain against the same
# model and step in PyTorch (bench/torch_unet.py, Debian's python3-torch), same data, batch 64,
# measured in one run, at 1 and at 2 threads:
#   1 thread:  dtrain 1 rank x 1 thread              vs torch 1 thread + OpenBLAS 1
#   2 threads: dtrain best of 1 rank x 2 threads and  vs torch best of (torch, OpenBLAS) threads
#              2 ranks x 1 thread (mpirun)               in {(2,1), (1,2), (2,2)}
# Each setting runs REPEATS times for STEPS optimizer steps; the best images/s counts. Only the
# training loop is timed, warm-up excluded on both sides: PyTorch skips a few warm-up steps
# and the up-front data load; dtrain's rate is taken from its step records (every 5 steps)
# after the first record (its first steps start the thread pool and, without mpirun, share
# the cores with Open MPI's singleton daemon starting up).
#
#   bench/bench_diffusion.sh [STEPS=40] [REPEATS=2]
set -euo pipefail
shopt -s inherit_errexit # a failed run inside $(...) stops the benchmark
cd "$(dirname "$0")/.."
STEPS=${1:-40}
[ "$STEPS" -ge 10 ] || { echo "bench_diffusion: STEPS must be at least 10 (5 are warm-up)" >&2; exit 2; }
REPEATS=${2:-2}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/dtrain ] || scripts/build.sh
[ -f data/mnist.h5 ] || build/dtrain prepare mnist --idx data/mnist --out data/mnist.h5
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Keep dtrain's wall time on training: evaluation only at epoch ends (never reached in a short
# run) and on a 1-image subset, no preview sampling at the end, no step lines.
DTRAIN_KEYS=(--max_steps "$STEPS" --eval_interval 0 --eval_images 1 --preview_per_label 0
             --log_interval 5 --data data/mnist.h5)

num() { grep -o "\"$2\": [-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: //'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

dtrain_run() { # RANKS THREADS → images/s
    local out=$TMP/run
    rm -rf "$out"
    if [ "$1" -eq 1 ]; then
        build/dtrain diffusion --threads "$2" "${DTRAIN_KEYS[@]}" --out "$out" >/dev/null
    else
        mpirun --oversubscribe -np "$1" build/dtrain diffusion --threads "$2" "${DTRAIN_KEYS[@]}" \
            --out "$out" >/dev/null
    fi
    # images over time of the step records after the first (images_per_s, ms_per_step)
    sed -n 's/.*"images_per_s": \([-0-9.eE+]*\), "ms_per_step": \([-0-9.eE+]*\).*/\1 \2/p' \
        "$out/metrics.jsonl" |
        awk 'NR > 1 { n += $1 * $2; t += $2 } END { if (t > 0) printf "%.1f\n", n / t; else print 0 }'
}

torch_run() { # TORCH_THREADS OPENBLAS_THREADS → images/s
    $PY bench/torch_unet.py --data data/mnist.h5 --steps "$STEPS" --torch-threads "$1" \
        --openblas-threads "$2" > "$TMP/torch.json"
    local params
    params=$(num "$TMP/torch.json" params)
    [ "$params" = 382721 ] || { echo "torch U-Net has $params parameters, not 382721" >&2; exit 1; }
    num "$TMP/torch.json" images_per_s
}

best_of() { # COMMAND... → the best images/s of REPEATS runs
    local b=0 v
    for _ in $(seq "$REPEATS"); do
        v=$("$@")
        b=$(max "$b" "$v")
    done
    echo "$b"
}

# best_* track the winner within a thread count: BEST (images/s) and BEST_NAME
pick() { # IMAGES_PER_S NAME VAR_PREFIX
    if awk -v a="$1" -v c="${!3}" 'BEGIN { exit !(a > c) }'; then
        printf -v "$3" '%s' "$1"
        printf -v "$3_name" '%s' "$2"
    fi
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores), $STEPS steps x batch 64, best of $REPEATS"
# dtrain's convolutions are OpenBLAS sgemm, PyTorch's are oneDNN: a forced OpenBLAS kernel
# choice moves dtrain's figure and barely PyTorch's, so the reading needs it.
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset: detected)}"
printf '%-8s %-30s %10s\n' threads setting images/s

d1=$(best_of dtrain_run 1 1)
printf '%-8s %-30s %10.1f\n' 1 "dtrain 1 rank x 1 thr" "$d1"
t1=$(best_of torch_run 1 1)
printf '%-8s %-30s %10.1f\n' 1 "torch 1 thr + openblas 1" "$t1"

d2=0; d2_name=; t2=0; t2_name=
for setting in "1 2" "2 1"; do
    read -r ranks thr <<< "$setting"
    b=$(best_of dtrain_run "$ranks" "$thr")
    printf '%-8s %-30s %10.1f\n' 2 "dtrain $ranks rank(s) x $thr thr" "$b"
    pick "$b" "${ranks}x$thr" d2
done
for setting in "2 1" "1 2" "2 2"; do
    read -r tt ot <<< "$setting"
    b=$(best_of torch_run "$tt" "$ot")
    printf '%-8s %-30s %10.1f\n' 2 "torch $tt thr + openblas $ot" "$b"
    pick "$b" "$tt+$ot" t2
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v d="$d1" -v t="$t1" \
    'BEGIN { printf "RESULT 1 thread:  dtrain %.1f images/s vs PyTorch %.1f: ratio %.2fx (target >= 1.5x)\n", d, t, d / t }'
awk -v d="$d2" -v t="$t2" -v dn="$d2_name" -v tn="$t2_name" \
    'BEGIN { printf "RESULT 2 threads: dtrain %.1f images/s (%s) vs PyTorch %.1f (%s): ratio %.2fx (target >= 1.5x)\n", d, dn, t, tn, d / t }'
