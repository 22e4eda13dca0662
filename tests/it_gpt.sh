#!/usr/bin/env bash
# The GPT job end to end: prepare text, train data-parallel, evaluate, resume bit-exactly,
# sample; and the GPT-2 small shape builds, runs a step on CPU and has the right size.
source "$(dirname "$0")/lib.sh"
TXT=$SRC/data/tinyshakespeare.txt
DATA=$(shakespeare_h5)
short=(--data "$DATA" --max_steps 60 --warmup_steps 10 --eval_interval 30 --eval_iters 8 --log_interval 10
       --ckpt_interval 20 --threads 1)

for np in 1 2; do
    "${MPIRUN[@]}" -np $np "$DTRAIN" gpt "${short[@]}" --out "$TMP/g$np" > "$TMP/log$np"
    s=$TMP/g$np/summary.json
    [ "$(json_num "$s" params)" = 804096 ] || fail "default GPT should have 804,096 parameters"
    loss=$(json_num "$s" val_loss)
    # ln(65) = 4.17 at init; 60 steps of the recipe reach about 2.6
    ge 3.0 "$loss" || fail "$np rank(s): val_loss $loss after 60 steps (expected < 3.0)"
    [ -n "$(json_num "$s" tokens_per_s)" ] || fail "no tokens_per_s in summary.json"
    for k in step loss lr grad_norm tokens_per_s ms_per_step; do
        grep -q "\"$k\"" "$TMP/g$np/metrics.jsonl" || fail "metrics.jsonl lacks $k"
    done
    [ "$(grep -c '"val_loss"' "$TMP/g$np/metrics.jsonl")" -eq 2 ] || fail "expected 2 eval lines (steps 30, 60)"
    grep -q "^step 10/60 | loss" "$TMP/log$np" || fail "no step log line"
    ok "$np rank(s): 60 steps, val_loss $loss, $(json_num "$s" tokens_per_s) tokens/s"
done

# resume: stop at step 30, resume, identical to the straight run
rc=0
DTRAIN_TEST_STOP_AT_STEP=30 "$DTRAIN" gpt "${short[@]}" --out "$TMP/r" > /dev/null || rc=$?
[ $rc -eq 75 ] || fail "stop should exit 75, got $rc"
"$DTRAIN" gpt "${short[@]}" --out "$TMP/r" --resume auto > /dev/null
same_state "$TMP/g1/checkpoints/ckpt-00000060.h5" "$TMP/r/checkpoints/ckpt-00000060.h5" ||
    fail "resumed GPT differs from the straight run"
same_losses "$TMP/g1/metrics.jsonl" "$TMP/r/metrics.jsonl" || fail "resumed GPT logged different losses"
ok "stop at step 30 + resume == 60 steps straight, to the bit"

# sampling: deterministic for a seed, starts with the prompt, decodes characters
ck=$TMP/g1/checkpoints/ckpt-00000060.h5
"$DTRAIN" sample gpt --ckpt "$ck" --prompt "ROMEO:" --tokens 80 --seed 3 > "$TMP/s1"
"$DTRAIN" sample gpt --ckpt "$ck" --prompt "ROMEO:" --tokens 80 --seed 3 > "$TMP/s2"
cmp -s "$TMP/s1" "$TMP/s2" || fail "sampling with the same seed differs"
head -c 6 "$TMP/s1" | grep -q "ROMEO:" || fail "the sample does not start with the prompt"
[ "$(wc -c < "$TMP/s1")" -ge 80 ] || fail "the sample is too short"
"$DTRAIN" sample gpt --ckpt "$ck" --prompt "ROMEO:" --tokens 80 --seed 4 > "$TMP/s3"
cmp -s "$TMP/s1" "$TMP/s3" && fail "different seeds gave the same sample"
ok "sample: $(head -c 60 "$TMP/s1" | tr '\n' '|')"

rc=0
"$DTRAIN" sample gpt --ckpt "$TMP/nosuch.h5" 2> "$TMP/err" > /dev/null || rc=$?
[ $rc -ne 0 ] && grep -q "nosuch.h5" "$TMP/err" || fail "a missing checkpoint should be a clear error"

# a shape key that disagrees with the checkpoint (fewer layers than it holds) is refused,
# for sampling, evaluation and resuming alike, rather than running part of the model
for cmd in "sample gpt --ckpt $ck" "eval gpt --ckpt $ck" "gpt ${short[*]} --resume $ck --out $TMP/rs"; do
    rc=0
    # shellcheck disable=SC2086 # the command's words are meant to split
    "$DTRAIN" $cmd --n_layer 1 2> "$TMP/err" > /dev/null || rc=$?
    [ $rc -eq 2 ] && grep -q "holds .* tensors, the model has" "$TMP/err" ||
        fail "dtrain $cmd --n_layer 1: want exit 2 naming the tensor counts, got $rc: $(cat "$TMP/err")"
done
ok "shape keys that disagree with the checkpoint are refused"

# GPT-2 small: 12 layers, 12 heads, 768 channels, block 1024, biases, vocabulary 50257
# (byte-level data, embedding padded to 50304): 124,439,808 parameters; one step on CPU.
BYTES=$TMP/bytes.h5
"$DTRAIN" prepare text --in "$TXT" --out "$BYTES" --tokenizer byte > /dev/null
"$DTRAIN" gpt --data "$BYTES" --n_layer 12 --n_head 12 --n_embd 768 --block_size 1024 --bias 1 \
    --vocab_size 50257 --batch_size 1 --max_steps 1 --eval_iters 1 --log_interval 1 --out "$TMP/gpt2" > "$TMP/log"
[ "$(json_num "$TMP/gpt2/summary.json" params)" = 124439808 ] || fail "GPT-2 small should have 124,439,808 parameters"
grep -q "124439808 parameters" "$TMP/log" || fail "the parameter count is not printed"
ok "GPT-2 small: 124,439,808 parameters, one step at $(json_num "$TMP/gpt2/summary.json" tokens_per_s) tokens/s"
