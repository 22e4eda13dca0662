#!/usr/bin/env bash
# bench/gpu_check.sh: the one prepared check for a lent GPU machine (issue 15, item 6),
# to run in under 10 minutes on an H100/H200 with only the CUDA toolkit, CMake, gcc and
# Python there (MPI, OpenBLAS, compute-sanitizer are used when present, never required).
#
#   OUT=/some/dir bench/gpu_check.sh        (OUT defaults to ./gpu_check_out)
#
# In order: the driver (nvidia-smi; the CUDA 13 runtime needs driver >= 580: otherwise it
# stops with the reason), the toolchain, a build of the GPU targets only (sm_90, override
# with ARCH=80 for an A100) from bench/gpu_check/, then every op of the CUDA backend
# against the CPU backend, each op twice bit for bit (GK_DIGEST), the optimizer, NCCL on
# one rank (and dist/nccl's gpu_nccl under mpirun when MPI is there), cuBLAS's measured
# matmul rate in fp32 and TF32, then gpu_jobs (bench/gpu_check/gpu_jobs.c): GPT-2 124M's
# shapes (batch 16 x 1024 tokens) forward, backward and AdamW with peak memory, time per
# phase and per op, tokens/s and achieved TFLOP/s against that rate, in fp32 and TF32; and
# each job (classify LeNet, gpt char-level, diffusion U-Net) for 300 steps on cuda against
# the same steps on cpu (loss curves, images/s and tokens/s). docs/gpu_check.md says what
# each step checks and how long it takes. A test that exits 77 (no usable GPU) counts as a
# failure here. Everything printed goes to $OUT/gpu_check.log, each program's output to
# its own file beside it. Exit status: 0 all passed, 1 something failed, 2 stopped early.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT" || { echo "gpu_check: cannot create OUT=$OUT"; exit 2; }
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
BUILD=${BUILD:-$OUT/build}
ARCH=${ARCH:-90}
T0=$(date +%s)
failures=()

say() { printf '[%4ds] %s\n' $(( $(date +%s) - T0 )) "$*"; }
stop() { say "STOP: $*"; exit 2; }
fail() { say "FAIL: $*"; failures+=("$*"); }

# runs NAME LIMIT_S CMD...: output to $OUT/NAME.txt and here; 77 is a failure here
run_check() {
    local name=$1 limit=$2; shift 2
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    sed 's/^/    /' "$OUT/$name.txt"
    case $rc in
        0) say "ok   $name" ;;
        77) fail "$name exited 77 (skipped: no usable GPU seen by the CUDA runtime)" ;;
        124) fail "$name did not finish in ${limit} s" ;;
        *) fail "$name exited $rc" ;;
    esac
    return $rc
}

say "dtrain GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), OUT=$OUT"

# ---- 1. the driver ---------------------------------------------------------------------
command -v nvidia-smi >/dev/null || stop "nvidia-smi not found: no NVIDIA driver on this machine"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || { cat "$OUT/nvidia-smi.txt"; stop "nvidia-smi failed: the driver is not loaded or sees no GPU"; }
cat "$OUT/nvidia-smi.txt"
query=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1) ||
    stop "nvidia-smi --query-gpu failed: $query"
[ -n "$query" ] || stop "nvidia-smi lists no GPU"
say "GPUs: $(echo "$query" | wc -l): $(echo "$query" | head -1)"
driver=$(echo "$query" | head -1 | awk -F', ' '{print $2}')
major=${driver%%.*}
[[ $major =~ ^[0-9]+$ ]] || stop "cannot read the driver version from nvidia-smi ('$driver')"
[ "$major" -ge 580 ] || stop "driver $driver is older than 580, which the CUDA 13 runtime needs (cudaGetDeviceCount would return 35)"

# ---- 2. the toolchain -------------------------------------------------------------------
[ -x /usr/local/cuda/bin/nvcc ] && PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || stop "nvcc not found (PATH, /usr/local/cuda/bin): install the CUDA toolkit"
command -v cmake >/dev/null || stop "cmake not found"
command -v gcc >/dev/null || stop "gcc not found"
say "nvcc: $(nvcc --version | tail -1); $(cmake --version | head -1); gcc $(gcc -dumpfullversion)"

# ---- 3. build the GPU targets only ---------------------------------------------------------
say "building bench/gpu_check for sm_$ARCH into $BUILD"
timeout 420 cmake -S bench/gpu_check -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$OUT/configure.txt" 2>&1 ||
    { tail -n 30 "$OUT/configure.txt"; stop "configure failed ($OUT/configure.txt)"; }
grep -E '^-- gpu_check|WARNING' "$OUT/configure.txt" | sed 's/^/    /'
timeout 420 cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.txt" 2>&1 ||
    { tail -n 40 "$OUT/build.txt"; stop "build failed ($OUT/build.txt)"; }
say "built"
# the CUDA runtime must see the GPU too (every test below would exit 77 otherwise)
run_check cuda_probe 60 "$BUILD/gpu_matmul_rate" --probe ||
    stop "the CUDA runtime sees no usable GPU (its error above), although nvidia-smi does"

# ---- 4. each op against the CPU, and twice bit for bit ----------------------------------------
mkdir -p "$OUT/digest"
twice() { # NAME EXE ARGS...: run with digests twice, then compare
    local name=$1; shift
    rm -f "$OUT/digest/$name".{1,2}
    GK_DIGEST=$OUT/digest/$name.1 run_check "$name" 120 "$@" || return
    GK_DIGEST=$OUT/digest/$name.2 timeout 120 "$@" >"$OUT/$name.again.txt" 2>&1 ||
        { fail "$name: the second run failed"; return; }
    if [ -s "$OUT/digest/$name.1" ] && cmp -s "$OUT/digest/$name".{1,2}; then
        say "ok   $name twice: bit for bit ($(wc -l <"$OUT/digest/$name.1") results)"
    else
        fail "$name twice: results differ"
        diff "$OUT/digest/$name".{1,2} | head -20 | sed 's/^/    /'
    fi
}
cases=$("$BUILD/gpu_ops" --list) || stop "gpu_ops --list failed"
for c in $cases; do twice "gpu_$c" "$BUILD/gpu_ops" "$c"; done

# ---- 5. the optimizer -------------------------------------------------------------------------
twice gpu_optim "$BUILD/gpu_optim"

# ---- 6. NCCL ----------------------------------------------------------------------------------
if [ -x "$BUILD/nccl_one_rank" ]; then
    run_check nccl_one_rank 120 "$BUILD/nccl_one_rank"
else
    fail "NCCL not found at build time: no NCCL check ($OUT/configure.txt)"
fi
if [ -x "$BUILD/gpu_nccl" ] && command -v mpirun >/dev/null; then
    run_check gpu_nccl_np1 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun --allow-run-as-root -np 1 "$BUILD/gpu_nccl"
else
    say "note: no MPI here: dist/nccl's own test (gpu_nccl) not run; nccl_one_rank covers NCCL"
fi

# ---- 7. cuBLAS's matmul rate: what the training runs below are measured against ----------------
run_check gpu_matmul_rate 180 "$BUILD/gpu_matmul_rate" 4096 8192
# the rate of the largest size, per precision (empty if the run failed)
rate_of() { awk -v p="$1" '$1 == "matmul" && $7 == p { r = $8 } END { print r }' "$OUT/gpu_matmul_rate.txt"; }
fp32_rate=$(rate_of fp32)
tf32_rate=$(rate_of tf32)

# ---- 8. GPT-2 124M shapes: forward, backward, AdamW; memory, time per phase and op, TFLOP/s ----
# without zlib's header gpu_jobs reads MNIST unpacked: Python's gzip unpacks it into $OUT/data
DATA=$ROOT/data
if [ -x "$BUILD/gpu_jobs" ] && grep -q '^-- gpu_check: no zlib' "$OUT/configure.txt"; then
    DATA=$OUT/data
    mkdir -p "$DATA/mnist" && cp "$ROOT/data/tinyshakespeare.txt" "$DATA/" &&
        python3 - "$ROOT/data/mnist" "$DATA/mnist" <<'PY' || fail "could not unpack MNIST into $DATA"
import gzip, shutil, sys
for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
    with gzip.open(f"{sys.argv[1]}/{name}.gz") as src, open(f"{sys.argv[2]}/{name}", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
fi
if [ -x "$BUILD/gpu_jobs" ]; then
    run_check gpt2_fp32 240 "$BUILD/gpu_jobs" gpt2 ${fp32_rate:+--cublas-tflops "$fp32_rate"}
    run_check gpt2_tf32 240 "$BUILD/gpu_jobs" gpt2 --tf32 ${tf32_rate:+--cublas-tflops "$tf32_rate"}

# ---- 9. each job on cuda against the same steps on cpu; images/s and tokens/s -----------------
    for job in classify gpt diffusion; do
        run_check "train_$job" 300 "$BUILD/gpu_jobs" train "$job" --data "$DATA" \
            --curve "$OUT/curve_$job.tsv"
    done
else
    fail "gpu_jobs was not built ($OUT/build.txt): no GPT-2 shapes, no job on cuda"
fi

# ---- summary ----------------------------------------------------------------------------------
# the figures, gathered from the programs' outputs (README takes them from here)
for f in gpt2_fp32 gpt2_tf32; do
    [ -s "$OUT/$f.txt" ] || continue
    grep -qE '^tokens/s' "$OUT/$f.txt" || continue
    say "$f: $(grep -E '^GPT-2 shapes' "$OUT/$f.txt" | grep -oE 'batch [0-9]+'); $(grep -E '^(tokens/s|achieved)' "$OUT/$f.txt" | tr '\n' ';')"
    grep -E '^device memory in use' "$OUT/$f.txt" | sed 's/^/    /'
done
for job in classify gpt diffusion; do
    grep -qE '^  cuda ' "$OUT/train_$job.txt" 2>/dev/null &&
        say "$job: $(grep -E '^  (cpu|cuda) ' "$OUT/train_$job.txt" | awk '{ printf "%s %s %s; ", $1, $2, $3 }')"
done
if [ ${#failures[@]} -eq 0 ]; then
    say "PASSED: every check ($(( $(date +%s) - T0 )) s)"
    exit 0
fi
say "FAILED: ${#failures[@]} check(s):"
printf '    %s\n' "${failures[@]}"
exit 1
