#!/usr/bin/env bash
# The recipes in configs/ run with --config: the default ones resolve to exactly the config
# a run without them gets (config.txt, the out key aside), and each trains a few steps.
# (test_recipes checks every file key by key; gpt2-124m's one step is in it_gpt.)
source "$(dirname "$0")/lib.sh"
MNIST=$(mnist_h5)
TEXT=$(shakespeare_h5)
quick_classify=(--max_steps 3 --threads 1)
quick_gpt=(--max_steps 3 --eval_iters 2 --threads 1)
quick_diffusion=(--max_steps 1 --eval_images 8 --preview_per_label 0 --threads 1)

for r in classify-lenet:classify:"$MNIST" classify-mlp:classify:"$MNIST" gpt-shakespeare-char:gpt:"$TEXT" \
         diffusion-mnist:diffusion:"$MNIST"; do
    IFS=: read -r name job data <<< "$r"
    quick=quick_$job[@]
    "$DTRAIN" "$job" --config "$SRC/configs/$name.conf" --data "$data" "${!quick}" --out "$TMP/$name" > /dev/null ||
        fail "$name: the recipe does not run"
    [ -f "$TMP/$name/summary.json" ] || fail "$name: no summary"
    [ "$name" = classify-mlp ] && continue
    "$DTRAIN" "$job" --data "$data" "${!quick}" --out "$TMP/$name-default" > /dev/null
    diff <(grep -v '^out = ' "$TMP/$name/config.txt") <(grep -v '^out = ' "$TMP/$name-default/config.txt") ||
        fail "$name: --config configs/$name.conf resolves differently from the defaults"
    ok "$name: runs, and resolves to the compiled-in defaults"
done
grep -q '^model = mlp$' "$TMP/classify-mlp/config.txt" || fail "classify-mlp did not set the MLP"
ok "classify-mlp: runs the MLP"
