#!/usr/bin/env bash
# dtrain report on tiny real runs of the three jobs: the table's figures against each run's
# summary.json, every picture decoded at its size, the real outputs and predictability
# measured, one-line messages for what cannot be reported (not a run, a stopped run, a run
# without checkpoints, runs that cannot be pooled, a directory given twice), and the run
# directories unchanged byte for byte.
source "$(dirname "$0")/lib.sh"
DATA=$(mnist_h5)
TOK=$(shakespeare_h5)
PNG=$BIN/tests/tool_png_size
R=$TMP/runs
mkdir -p "$R"

lenet=(classify --data "$DATA" --model lenet --max_steps 40 --log_interval 10 --eval_interval 20 --threads 1)
"$DTRAIN" "${lenet[@]}" --seed 0 --out "$R/lenet-s0" > /dev/null
"$DTRAIN" "${lenet[@]}" --seed 1 --out "$R/lenet-s1" > /dev/null
"$DTRAIN" classify --data "$DATA" --model mlp --max_steps 20 --threads 1 --out "$R/mlp" > /dev/null
"${MPIRUN[@]}" -np 2 "$DTRAIN" gpt --data "$TOK" --n_layer 2 --n_head 2 --n_embd 32 --block_size 32 \
    --batch_size 4 --max_steps 20 --warmup_steps 2 --eval_interval 10 --eval_iters 2 --log_interval 5 \
    --threads 1 --out "$R/gpt" > /dev/null
"$DTRAIN" diffusion --data "$DATA" --channels 8 --channel_mult 1,2 --groups 4 --heads 2 --batch_size 16 \
    --max_steps 10 --warmup_steps 2 --eval_interval 5 --eval_images 32 --log_interval 5 --preview_per_label 1 \
    --preview_steps 2 --threads 1 --out "$R/diff" > /dev/null
rc=0
DTRAIN_TEST_STOP_AT_STEP=10 "$DTRAIN" "${lenet[@]}" --out "$R/stopped" > /dev/null || rc=$?
[ $rc -eq 75 ] || fail "the stopped run should exit 75, got $rc"
cp -r "$R/lenet-s0" "$R/nockpt" && rm -r "$R/nockpt/checkpoints"
# a run caught while it writes a metrics line
cp -r "$R/stopped" "$R/running" && printf '{"step": 12, "lo' >> "$R/running/metrics.jsonl"
mkdir "$R/empty"
ok "8 tiny runs made"

snapshot() { (cd "$R" && find . -printf '%p %y %s %m %T@\n' | sort && find . -type f -exec sha256sum {} + | sort); }
snapshot > "$TMP/before"

opts=(--seeds 2 --per-label 2 --steps 2 --tokens 20)
"$DTRAIN" report "$R/lenet-s0" "$R/lenet-s1" "$R/mlp" "$R/gpt" "$R/diff" "$R/stopped" "$R/running" "$R/nockpt" "$R/empty" \
    "$R/lenet-s0/" --out "$TMP/rep" "${opts[@]}" > "$TMP/out" 2> "$TMP/err" || fail "report exited $?: $(cat "$TMP/err")"
snapshot > "$TMP/after"
diff -q "$TMP/before" "$TMP/after" > /dev/null || fail "the report changed a run directory: $(diff "$TMP/before" "$TMP/after" | head -3)"
ok "run directories unchanged, byte for byte (contents, sizes, modes, times)"

# one line each for what cannot be reported in full
one_line() { [ "$(grep -c "$1" "$TMP/err")" = 1 ] || fail "expected one line matching '$1' in: $(cat "$TMP/err")"; }
one_line "empty: not a run directory (no config.txt); left out"
one_line "stopped: no summary.json (still running, or stopped before the end)"
one_line "running: no summary.json (still running, or stopped before the end)"
grep -q "running/metrics.jsonl" "$TMP/err" && fail "a metrics line being written is not an error"
one_line "nockpt: no checkpoint"
one_line "lenet-s0/: given twice"
one_line "mlp are both classify runs but differ in 'max_steps' (40, 20), 'model' (lenet, mlp)"
one_line "nockpt has the config and seed of .*lenet-s0: counted once"
[ "$(wc -l < "$TMP/err")" -le 8 ] || fail "more messages than expected: $(cat "$TMP/err")"
ok "not a run, stopped run, run in progress, no checkpoint, incompatible mix, duplicate: one line each"

md=$TMP/rep/report.md
has() { grep -qF -- "$1" "$md" || fail "report.md lacks '$1'"; }
# the table's header: the runs that are runs, once each
grep -q "^|   | lenet-s0 | lenet-s1 | mlp | gpt | diff | stopped | running | nockpt |$" "$md" || fail "header: $(grep '^|   |' "$md")"
commas() { printf "%'d" "$1" 2> /dev/null | grep -q , && printf "%'d" "$1" || awk -v n="$1" 'BEGIN {
    s = sprintf("%d", n); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
for run in lenet-s0 lenet-s1 mlp; do
    s=$R/$run/summary.json
    has "test accuracy **$(awk -v a="$(json_num "$s" test_acc)" 'BEGIN { printf "%.2f", 100 * a }')%**"
    has "$(commas "$(json_num "$s" params)") parameters"
    has "$(awk -v w="$(json_num "$s" wall_time_s)" -v t="$(json_num "$s" train_time_s)" 'BEGIN { printf "%.1f s (training %.1f s)", w, t }')"
    for k in 0 9; do
        has "$(awk -v p="$(json_num "$s" precision_$k)" -v r="$(json_num "$s" recall_$k)" -v k=$k \
            'BEGIN { printf "| %d | %.4f | %.4f |", k, p, r }')"
    done
done
# the confusion matrix the report computed from each final checkpoint gives the run's own
# per-class figures (to within one test image, should a near tie fall the other way)
rows=$(grep -E '^\| [0-9] \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$' "$md" | wc -l)
[ "$rows" = 30 ] || fail "expected 30 per-class rows with the checkpoint's figures, found $rows"
grep -E '^\| [0-9] \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$' "$md" | awk -F'|' '
    { d1 = $3 - $5; d2 = $4 - $6; if (d1 < 0) d1 = -d1; if (d2 < 0) d2 = -d2; if (d1 > 0.01 || d2 > 0.01) bad = 1 }
    END { exit bad }' || fail "the checkpoint's confusion matrix disagrees with summary.json"
mean=$(awk -v a="$(json_num "$R/lenet-s0/summary.json" test_acc)" -v b="$(json_num "$R/lenet-s1/summary.json" test_acc)" \
    'BEGIN { printf "%.2f", 50 * (a + b) }')
has "test accuracy over 2 seeds: mean $mean%"
has "the same label for 2,000 of 2,000 (100.0%)"
v=$(json_num "$R/gpt/summary.json" val_loss)
has "$(awk -v v="$v" 'BEGIN { printf "validation loss **%.4f**, perplexity **%.2f**", v, exp(v) }')"
has "2 ranks × 1 thread"
has "(20 steps)"
has "$(commas "$(json_num "$R/gpt/summary.json" params)") parameters"
has "one prompt, 2 seeds: 2 distinct outputs (0% identical); one seed twice: identical"
has "$(awk -v v="$(json_num "$R/diff/summary.json" val_loss)" 'BEGIN { printf "validation MSE %.4f", v }')"
has "one digit (3), 2 seeds: 2 distinct outputs"
grep -q "LeNet judge: conditional accuracy \*\*[0-9.]*%\*\*, Fréchet distance" "$md" || fail "no judge figures"
has "ROMEO:"
grep -q '"test_acc": ' "$TMP/rep/report.json" && grep -q '"confusion_matrix": ' "$TMP/rep/report.json" ||
    fail "report.json lacks the classifier's figures"
ok "table: accuracy, parameters, times, per-class figures, spread over seeds, perplexity, judge, predictability match summary.json"

# every picture the report links decodes at the size it is drawn
size_of() { "$PNG" "$TMP/rep/$1" || fail "$1 does not decode"; }
n=0
for f in $(grep -o '([a-z0-9-]*\.png)' "$md" | tr -d '()' | sort -u); do
    case $f in
        *-loss.png) want="1100 420" ;;
        *-throughput.png) want="640 400" ;;
        *-confusion.png) want="520 540" ;;
        loss-vs-compute.png) want="900 500" ;;
        *-samples.png) want="242 302" ;; # 8 per digit, 10 digits: 28-pixel tiles, 2-pixel borders
        *) fail "unexpected picture $f" ;;
    esac
    [ "$(size_of "$f")" = "$want" ] || fail "$f is $(size_of "$f"), expected $want"
    n=$((n + 1))
done
[ $n -ge 13 ] || fail "expected at least 13 pictures, found $n"
ok "$n pictures, each decoded by libpng at its size"

# a single run; nothing to report; --out inside a run
"$DTRAIN" report "$R/gpt" --out "$TMP/one" "${opts[@]}" > /dev/null 2> "$TMP/err1" || fail "single run: $(cat "$TMP/err1")"
grep -q "^|   | gpt |$" "$TMP/one/report.md" || fail "single-run report"
rc=0
"$DTRAIN" report "$R/empty" --out "$TMP/none" 2> "$TMP/err2" || rc=$?
[ $rc -eq 2 ] && [ ! -e "$TMP/none" ] && [ "$(wc -l < "$TMP/err2")" = 2 ] || fail "no run: exit $rc, $(cat "$TMP/err2")"
rc=0
"$DTRAIN" report "$R/gpt" --out "$R/gpt/report" 2> "$TMP/err3" || rc=$?
[ $rc -eq 2 ] && [ ! -e "$R/gpt/report" ] || fail "--out inside a run: exit $rc"
snapshot > "$TMP/after2"
diff -q "$TMP/before" "$TMP/after2" > /dev/null || fail "a run directory changed"
ok "a single run; no run at all (exit 2); --out inside a run refused (exit 2)"
