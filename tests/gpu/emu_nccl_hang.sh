#!/usr/bin/env bash
# The NCCL stand-in's failure switches. Hang: the 3rd collective of each rank never completes, so
# dist/nccl's wait must time out (DTRAIN_NCCL_TIMEOUT), abort the NCCL communicator and
# the job, and say which rank and why. Passes when the job fails that way within the
# limit; a job that passes, hangs, or dies without the message fails this test. Then the
# asynchronous error switch.
#   emu_nccl_hang.sh path/to/gpu_emu_nccl
set -uo pipefail
exe=$1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 \
    -x DTRAIN_EMU_NCCL_HANG_AT=3 -x DTRAIN_NCCL_TIMEOUT=2 "$exe" >"$log" 2>&1
rc=$?
cat "$log"
echo "exit status $rc after $(( $(date +%s) - start )) s"
if [ "$rc" -eq 0 ]; then echo "FAIL: the job passed although a collective hung"; exit 1; fi
if [ "$rc" -eq 124 ]; then echo "FAIL: the job hung (no timeout fired)"; exit 1; fi
if ! grep -Eq 'dtrain: rank [01]/2: waiting for the all-reduce failed: not finished after 2 s' "$log"; then
    echo "FAIL: no line naming the rank and the timeout"
    exit 1
fi
echo "ok: the hung collective was aborted by the timeout"

# the 2nd collective of rank 1 reports an asynchronous error: rank 1 aborts at once with
# NCCL's message (rank 0 is then killed by mpirun, or times out)
timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x DTRAIN_EMU_NCCL_FAIL_AT=2 \
    -x DTRAIN_EMU_NCCL_RANK=1 -x DTRAIN_NCCL_TIMEOUT=30 "$exe" >"$log" 2>&1
rc=$?
cat "$log"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then echo "FAIL: exit status $rc"; exit 1; fi
if ! grep -Eq 'dtrain: rank 1/2: ncclAllReduce.* failed: remote process exited' "$log"; then
    echo "FAIL: no line naming rank 1 and the asynchronous error"
    exit 1
fi
echo "ok: the asynchronous error aborted the job"
