#!/usr/bin/env bash
# N ranks x batch B/N == 1 rank x batch B, for real under mpirun, for both models.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
EQ=$BIN/tests/mpi_equivalence
for model in lenet mlp; do
    common=(--data "$DATA" --model "$model" --batch_size 64 --steps 10 --threads 1)
    "${MPIRUN[@]}" -np 1 "$EQ" "${common[@]}" --out "$TMP/$model-r1" --dump "$TMP/p1.bin" >/dev/null
    "${MPIRUN[@]}" -np 2 "$EQ" "${common[@]}" --out "$TMP/$model-r2" --dump "$TMP/p2.bin" >/dev/null
    "$EQ" --compare "$TMP/p1.bin" "$TMP/p2.bin" 1e-5 || fail "$model: 2 ranks x 32 != 1 rank x 64"
    # and the test can fail: a different batch split must not pass as equal
    "${MPIRUN[@]}" -np 1 "$EQ" "${common[@]}" --batch_size 32 --out "$TMP/$model-r3" --dump "$TMP/p3.bin" >/dev/null
    if "$EQ" --compare "$TMP/p1.bin" "$TMP/p3.bin" 1e-5 >/dev/null; then
        fail "$model: the comparison did not tell batch 32 from batch 64"
    fi
    ok "$model: 2 ranks x batch 32 == 1 rank x batch 64 after 10 steps"
done
