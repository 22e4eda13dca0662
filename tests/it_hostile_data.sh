#!/usr/bin/env bash
# Hostile and broken dataset files (issue 19), crafted for real with h5py (tests/hostile_data.py):
# wrong dtypes and ranks, a test split shaped unlike the train split, labels and token ids
# out of range, a character table longer than the vocabulary, absurd sizes, chunks never
# written, data in other files, truncated and empty files, attributes of the wrong type.
# Each must end the job with exit 2 and one line on stderr naming the file and what was
# expected: never a crash, a hang, or training on garbage. The same jobs on the good files
# train (exit 0), so the checks are not merely refusing everything.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, with python3-h5py; not a virtual environment's python3
"$PY" -c 'import h5py' 2> /dev/null || fail "$PY cannot import h5py (scripts/install-deps.sh installs python3-h5py)"

head -c 20000 "$SRC/data/tinyshakespeare.txt" > "$TMP/small.txt"
"$DTRAIN" prepare text --in "$TMP/small.txt" --out "$TMP/tok.h5" > /dev/null
"$DTRAIN" prepare text --in "$TMP/small.txt" --tokenizer byte --shard-tokens 4096 --out "$TMP/tokdir" > /dev/null
"$DTRAIN" prepare bpe --in "$TMP/small.txt" --vocab-size 300 --out "$TMP/bpe" > /dev/null
"$DTRAIN" prepare text --in "$TMP/small.txt" --tokenizer bpe --bpe "$TMP/bpe" --out "$TMP/tbpe.h5" > /dev/null
B=$TMP/bad
mkdir "$B"
"$PY" "$SRC/tests/hostile_data.py" "$B" "$TMP/tok.h5" "$TMP/tokdir" "$TMP/tbpe.h5"

CLASSIFY=(classify --model mlp --hidden 16 --epochs 1 --batch_size 32 --threads 1)
DIFFUSION=(diffusion --channels 8 --channel_mult 1,2 --groups 4 --heads 2 --batch_size 32 --max_steps 1
           --eval_images 16 --preview_per_label 1 --preview_steps 2 --threads 1)
GPT=(gpt --n_layer 1 --n_head 1 --n_embd 16 --block_size 16 --batch_size 4 --max_steps 2 --eval_iters 1
     --eval_interval 2 --log_interval 1 --threads 1)

# trains FILE JOB...: the job accepts FILE and finishes
trains() {
    local file=$1 d=$TMP/c$BASHPID status=0; shift
    mkdir "$d"
    timeout 120 "$DTRAIN" "$@" --data "$file" --out "$d/run" > "$d/out" 2> "$d/err" || status=$?
    [ $status -eq 0 ] || { cat "$d/err"; fail "$1 on the good file $file: exit $status"; }
    ok "$1 trains on $(basename "$file")"
}

# refused FILE EXPECTED JOB...: exit 2 (not a signal, not a timeout), exactly one line on
# stderr, naming FILE and holding EXPECTED, no sign of a crash, and no step trained
refused() {
    local file=$1 want=$2 d=$TMP/c$BASHPID status=0; shift 2
    mkdir "$d"
    timeout 60 "$DTRAIN" "$@" --data "$file" --out "$d/run" > "$d/out" 2> "$d/err" || status=$?
    [ $status -eq 2 ] || { cat "$d/err"; fail "$1 on $file: exit $status, expected 2"; }
    [ "$(wc -l < "$d/err")" -eq 1 ] || { cat "$d/err"; fail "$1 on $file: expected one line on stderr"; }
    grep -qF -- "$file" "$d/err" || { cat "$d/err"; fail "$1 on $file: the error does not name the file"; }
    grep -qF -- "$want" "$d/err" || { cat "$d/err"; fail "$1 on $file: the error lacks '$want'"; }
    grep -qE "Segmentation|Abort|core dumped|Sanitizer" "$d/err" && fail "$1 on $file: crashed"
    grep -qs '"step"' "$d/run/metrics.jsonl" && fail "$1 on $file: trained before failing"
    ok "$(basename "$file"): $(sed 's/^dtrain: rank [0-9]*\/[0-9]*: //' "$d/err")"
}

# Each run waits mostly on MPI's start-up: they run CONCURRENT at a time. A failing case
# prints its reason; the test then fails when its batch is collected.
CONCURRENT=6
pids=()
collect() {
    local p bad=0
    for p in "${pids[@]}"; do wait "$p" || bad=1; done
    pids=()
    [ $bad -eq 0 ] || fail "a case failed (see above)"
}
bg() {
    "$@" &
    pids+=($!)
    [ ${#pids[@]} -lt $CONCURRENT ] || collect
}

# ---- image files: the classify job (and the diffusion job for the cross-split check) -------
bg trains "$B/good.h5" "${CLASSIFY[@]}"
bg refused "$B/dtype_float.h5" "/train/images: expected uint8, got float32" "${CLASSIFY[@]}"
bg refused "$B/labels_int16.h5" "/train/labels: expected uint8, got int16" "${CLASSIFY[@]}"
bg refused "$B/rank2.h5" "expected rank 3 or 4 (N x H x W [x C]), got rank 2" "${CLASSIFY[@]}"
bg refused "$B/rank5.h5" "expected rank 3 or 4 (N x H x W [x C]), got rank 5" "${CLASSIFY[@]}"
bg refused "$B/scalar.h5" "got rank 0" "${CLASSIFY[@]}"
bg refused "$B/not_dataset.h5" "/train/images: not a dataset" "${CLASSIFY[@]}"
bg refused "$B/labels_count.h5" "holds 63 labels: expected 64, one per image" "${CLASSIFY[@]}"
bg refused "$B/labels_range.h5" "/test/labels: label 10 at index 0: expected 0..9" "${CLASSIFY[@]}"
bg refused "$B/test_shape.h5" "/test/images: images of 32 x 32 x 1: expected 28 x 28 x 1, the shape of /train/images" \
    "${CLASSIFY[@]}"
bg refused "$B/test_channels.h5" "images of 28 x 28 x 3: expected 28 x 28 x 1" "${CLASSIFY[@]}"
bg refused "$B/test_shape.h5" "images of 32 x 32 x 1: expected 28 x 28 x 1" "${DIFFUSION[@]}"
bg refused "$B/huge_split.h5" "1000000000 images of 1000 x 1000 x 1 need 1e+15 bytes on this rank: expected at most \
this machine's memory" "${CLASSIFY[@]}"
bg refused "$B/huge_image.h5" "images of 100000 x 100000 x 1: expected H, W, C >= 1 and at most 67108864 bytes" \
    "${CLASSIFY[@]}"
bg refused "$B/wrap_image.h5" "images of 4294967296 x 4294967296 x 1" "${CLASSIFY[@]}"
bg refused "$B/big_chunk.h5" "chunks of 313600000 bytes: expected at most 268435456" "${CLASSIFY[@]}"
bg refused "$B/unwritten_chunks.h5" "/train/images: 4 of 8 chunks were never written (the first holds items 32..39" \
    "${CLASSIFY[@]}"
bg refused "$B/unwritten_labels.h5" "/test/labels: its 32 elements were never written" "${CLASSIFY[@]}"
bg refused "$B/external.h5" "stored in 1 external file(s): expected the data stored in this file" "${CLASSIFY[@]}"
bg refused "$B/virtual.h5" "a virtual dataset (its data lies in other files)" "${CLASSIFY[@]}"
bg refused "$B/truncated.h5" "cannot open as HDF5: truncated file" "${CLASSIFY[@]}"
bg refused "$B/empty.h5" "cannot open as HDF5" "${CLASSIFY[@]}"
bg refused "$B/not_hdf5.h5" "cannot open as HDF5" "${CLASSIFY[@]}"
collect

# on 2 ranks every rank stops, with the code of the check (no hang, no MPI_Abort's 1)
status=0
"${MPIRUN[@]}" -np 2 "$DTRAIN" "${CLASSIFY[@]}" --data "$B/test_shape.h5" --out "$TMP/run" > "$TMP/out" 2> "$TMP/err" ||
    status=$?
[ $status -eq 2 ] || { cat "$TMP/err"; fail "2 ranks on test_shape.h5: exit $status, expected 2"; }
grep -qF "$B/test_shape.h5: /test/images: images of 32 x 32 x 1" "$TMP/err" || { cat "$TMP/err"; fail "2 ranks: no error"; }
ok "2 ranks: exit 2 on test_shape.h5"

# ---- token files: the gpt job ---------------------------------------------------------------
bg trains "$TMP/tok.h5" "${GPT[@]}"
bg trains "$TMP/tokdir" "${GPT[@]}"
bg trains "$TMP/tbpe.h5" "${GPT[@]}"
bg refused "$B/vocab_huge.h5" "attribute 'vocab_size' on /: 100000000: expected 1 to 16777216" "${GPT[@]}"
bg refused "$B/vocab_negative.h5" "attribute 'vocab_size' on /: -1: expected 1 to 16777216" "${GPT[@]}"
bg refused "$B/vocab_float.h5" "attribute 'vocab_size' on /: not a single integer" "${GPT[@]}"
bg refused "$B/vocab_string.h5" "attribute 'vocab_size' on /: not a single integer" "${GPT[@]}"
bg refused "$B/chars_long.h5" "attribute 'chars' holds more than 58 characters: expected vocab_size = 58" "${GPT[@]}"
bg refused "$B/chars_short.h5" "attribute 'chars' holds 57 characters: expected vocab_size = 58" "${GPT[@]}"
bg refused "$B/chars_int.h5" "attribute 'chars' on /: not a single string" "${GPT[@]}"
bg refused "$B/format_wrong.h5" "format \"dtrain-images-v1\": expected \"dtrain-tokens-v1\"" "${GPT[@]}"
bg refused "$B/ids_over.h5" "is id 58: expected an id below vocab_size 58" "${GPT[@]}"
bg refused "$B/tokens_float.h5" "/train/tokens: expected uint16 or uint32 token ids, got float32" "${GPT[@]}"
bg refused "$B/tokens_2d.h5" "/train/tokens: expected a 1-D array of token ids, got rank 2" "${GPT[@]}"
bg refused "$B/tokens_unwritten.h5" "/train/tokens: 5 of 5 chunks were never written" "${GPT[@]}"
bg refused "$B/tokens_partial.h5" "/train/tokens: 17 of 18 chunks were never written (the first holds items 1024..2047" \
    "${GPT[@]}"
bg refused "$B/dir_sizes_wrap" "/shard_sizes[1] = 4611686018427387904: expected a positive count, with the total at most" \
    "${GPT[@]}"
bg refused "$B/dir_sizes_float" "/shard_sizes: expected 1 to 16777215 integer token counts" "${GPT[@]}"
bg refused "$B/dir_sizes_unwritten" "/shard_sizes: 5 of 5 chunks were never written" "${GPT[@]}"
bg refused "$B/dir_vocab_huge" "index.h5: attribute 'vocab_size' on /: expected 1 to 16777216" "${GPT[@]}"
bg refused "$B/dir_range" "/train: 4611686018427387904 tokens from 0: expected a non-empty range within the 20000 tokens" \
    "${GPT[@]}"
bg refused "$B/dir_shard_lies" "shard-00000.h5: /tokens: 1 of 1 chunks were never written" "${GPT[@]}"
bg refused "$B/bpe_blob_float.h5" "/tokenizer/vocab.json: float32 of rank 1: expected a 1-D uint8 array" "${GPT[@]}"
bg refused "$B/bpe_blob_unwritten.h5" "/tokenizer/vocab.json: 10 of 10 chunks were never written" "${GPT[@]}"
bg refused "$B/bpe_id_huge.h5" "token \"zzzz\": expected an integer id in [0, 16777216)" "${GPT[@]}"
bg refused "$B/bpe_not_json.h5" "/tokenizer/vocab.json: not valid JSON at line 1" "${GPT[@]}"
bg refused "$B/bpe_vocab_mismatch.h5" "vocab_size 299: expected 300, the size of the stored BPE vocabulary" "${GPT[@]}"
collect

# ---- text inputs of prepare: a directory that links back to itself twice (a walk that never
# ends) and a FIFO inside a directory (a read that never ends) ---------------------------------
mkdir -p "$TMP/loop/sub"
cp "$TMP/small.txt" "$TMP/loop/a.txt"
mkfifo "$TMP/loop/fifo"
ln -s .. "$TMP/loop/sub/up1"
ln -s .. "$TMP/loop/sub/up2"
status=0
timeout 60 "$DTRAIN" prepare text --in "$TMP/loop" --tokenizer byte --out "$TMP/loop.h5" > /dev/null 2> "$TMP/err" ||
    status=$?
[ $status -eq 2 ] || { cat "$TMP/err"; fail "a directory loop: exit $status, expected 2"; }
grep -qF "$TMP/loop/sub/up1: a link back to a directory that contains it" "$TMP/err" || { cat "$TMP/err"; fail "loop"; }
ok "$(cat "$TMP/err")"
rm -r "$TMP/loop/sub"
timeout 60 "$DTRAIN" prepare text --in "$TMP/loop" --tokenizer byte --out "$TMP/loop.h5" > /dev/null ||
    fail "a directory with a FIFO: exit $?, expected the FIFO skipped"
ok "a FIFO inside an input directory is skipped"
