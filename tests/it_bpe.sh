#!/usr/bin/env bash
# Byte-level BPE against the Hugging Face `tokenizers` package (PyPI, in a venv under the
# build tree, made by scripts/tokenizers-venv.sh; no venv = a failure, not a skip):
# dtrain's ids equal that package's on generated text (whitespace runs, newlines, digits,
# punctuation, non-ASCII UTF-8, invalid UTF-8, contractions) and on the shipped corpus, for
# a vocabulary trained by that package and for one trained by `dtrain prepare bpe`;
# decoding gives the text back; `prepare text --tokenizer bpe` writes those ids to a file
# and to a token directory; bad tokenizer files and inputs are one-line errors, no output.
source "$(dirname "$0")/lib.sh"
TXT=$SRC/data/tinyshakespeare.txt
PY=$("$SRC/scripts/tokenizers-venv.sh" "$BIN") || fail "cannot make the tokenizers venv (is PyPI reachable?)"
REF=("$PY" "$SRC/tests/bpe_reference.py")
TOOL=$BIN/tests/tool_bpe

"${REF[@]}" cases "$TMP/cases"
files=("$TMP"/cases/*.txt "$TXT")

# check_vocab DIR: for every file, our ids == the package's, and our decoding == its decoding
check_vocab() {
    local dir=$1 f n ids=0
    "${REF[@]}" encode "$dir" "${files[@]}" "$TMP/ref"
    for f in "${files[@]}"; do
        n=$(basename "$f")
        "$TOOL" encode "$dir" "$f" "$TMP/ids"
        cmp -s "$TMP/ids" "$TMP/ref/$n.ids" ||
            fail "$n: ids differ from tokenizers' with $dir: $(diff "$TMP/ids" "$TMP/ref/$n.ids" | head -n 4 | tr '\n' ' ')"
        "$TOOL" decode "$dir" "$TMP/ids" "$TMP/back"
        cmp -s "$TMP/back" "$TMP/ref/$n.decoded" || fail "$n: decoding differs from tokenizers'"
        ids=$((ids + $(wc -l < "$TMP/ids")))
    done
    # text that is valid UTF-8 comes back byte for byte
    "$TOOL" decode "$dir" <("$TOOL" encode "$dir" "$TXT" /dev/stdout) "$TMP/back"
    cmp -s "$TMP/back" "$TXT" || fail "the corpus does not decode back to itself"
    echo "$ids"
}

"${REF[@]}" train "$TXT" 2000 "$TMP/hf"
n=$(check_vocab "$TMP/hf")
ok "tokenizers' vocabulary (2000): ids equal on ${#files[@]} texts ($n ids), decoding exact"

"$DTRAIN" prepare bpe --in "$TXT" --vocab-size 2000 --out "$TMP/dt" > "$TMP/log"
grep -q "^bpe: read 1.1 MB from 1 file" "$TMP/log" || fail "no progress line: $(cat "$TMP/log")"
[ "$(wc -l < "$TMP/dt/merges.txt")" -gt 1000 ] || fail "prepare bpe learned too few merges"
n=$(check_vocab "$TMP/dt")
same=different
cmp -s "$TMP/dt/merges.txt" "$TMP/hf/merges.txt" && same=identical
ok "dtrain's vocabulary read by tokenizers: ids equal ($n ids); merges $same to tokenizers' trainer"

# prepare text: one file and a token directory hold the same ids as the encoder
"$TOOL" encode "$TMP/hf" "$TXT" "$TMP/want"
"$DTRAIN" prepare text --in "$TXT" --tokenizer bpe --bpe "$TMP/hf" --out "$TMP/t.h5" > /dev/null
ids_of() { # FILE DATASET: its uint16 ids, one per line
    local raw
    raw=$(mktemp "$TMP/raw.XXXXXX")
    h5dump -d "$2" -b LE -o "$raw" "$1" > /dev/null && od -An -v -tu2 "$raw" | tr -s ' ' '\n' | sed '/^$/d'
}
{ ids_of "$TMP/t.h5" /train/tokens && ids_of "$TMP/t.h5" /val/tokens; } | cmp -s - "$TMP/want" ||
    fail "prepare text --tokenizer bpe wrote other ids than the encoder"
cat "$TXT" | "$DTRAIN" prepare text --in - --tokenizer bpe --bpe "$TMP/hf" --out "$TMP/tdir" --shard-tokens 100000 \
    > "$TMP/log"
[ "$(ls "$TMP/tdir" | grep -c '^shard-.*\.h5$')" = 4 ] || fail "expected 4 shards: $(ls "$TMP/tdir")"
for s in "$TMP"/tdir/shard-*.h5; do ids_of "$s" /tokens; done | cmp -s - "$TMP/want" ||
    fail "the token directory's shards hold other ids than the encoder"
ok "prepare text: a .h5 file and a directory of 4 shards (from stdin) hold the encoder's ids"

# bad input: one line naming the file and what is wrong, exit 2, nothing written
bad() { # NAME EXPECT-REGEX ARGS...
    local name=$1 want=$2 rc=0
    shift 2
    "$DTRAIN" prepare "$@" > /dev/null 2> "$TMP/err" || rc=$?
    [ $rc -eq 2 ] || fail "$name: want exit 2, got $rc: $(cat "$TMP/err")"
    [ "$(wc -l < "$TMP/err")" -eq 1 ] && grep -Eq "$want" "$TMP/err" || fail "$name: message: $(cat "$TMP/err")"
    [ ! -e "$TMP/out.h5" ] && [ ! -e "$TMP/outdir" ] && [ -z "$(ls "$TMP" | grep '\.tmp\.')" ] ||
        fail "$name: left output behind"
}
mk() { mkdir -p "$TMP/$1" && cp "$TMP/hf/vocab.json" "$TMP/hf/merges.txt" "$TMP/$1/"; }
mk notjson && printf '{"a": 1,' > "$TMP/notjson/vocab.json"
bad "vocab.json not JSON" "notjson/vocab.json: not valid JSON at line 1" text --in "$TXT" --tokenizer bpe --bpe "$TMP/notjson" --out "$TMP/out.h5"
mk array && echo '[1, 2]' > "$TMP/array/vocab.json"
bad "vocab.json an array" "array/vocab.json: expected a non-empty JSON object" text --in "$TXT" --tokenizer bpe --bpe "$TMP/array" --out "$TMP/outdir"
mk missing && printf '#version: 0.2\nĠ t\nzz\xc4\xa0 q\n' > "$TMP/missing/merges.txt"
bad "merge of a token not in the vocabulary" 'missing/merges.txt: line 3: token "zzĠ" is not in' text --in "$TXT" --tokenizer bpe --bpe "$TMP/missing" --out "$TMP/out.h5"
mk huge && sed 's/"<|endoftext|>":0/"<|endoftext|>":16777216/' "$TMP/hf/vocab.json" > "$TMP/huge/vocab.json"
grep -q 16777216 "$TMP/huge/vocab.json" || fail "test setup: no special token at id 0 in $(head -c 80 "$TMP/hf/vocab.json")"
bad "vocabulary larger than the token type allows" "huge/vocab.json: token \"<\|endoftext\|>\": expected an integer id in \[0, 16777216\)" text --in "$TXT" --tokenizer bpe --bpe "$TMP/huge" --out "$TMP/outdir"
: > "$TMP/empty.txt"
bad "empty file" "empty.txt: is empty" text --in "$TMP/empty.txt" --tokenizer bpe --bpe "$TMP/hf" --out "$TMP/outdir"
bad "empty file (bpe training)" "empty.txt: is empty" bpe --in "$TMP/empty.txt" --vocab-size 300 --out "$TMP/outdir"
head -c 3000 "$BIN/dtrain" > "$TMP/binary.bin"
bad "binary file" "binary.bin: NUL byte at offset [0-9]+: expected text" text --in "$TMP/binary.bin" --tokenizer bpe --bpe "$TMP/hf" --out "$TMP/out.h5"
bad "binary file in a directory" "binary.bin: NUL byte" text --in "$TXT" --in "$TMP/binary.bin" --tokenizer bpe --bpe "$TMP/hf" --out "$TMP/outdir"
bad "binary file (bpe training)" "binary.bin: NUL byte" bpe --in "$TMP/binary.bin" --vocab-size 300 --out "$TMP/outdir"
bad "vocabulary size beyond the limit" "vocab size 16777217: expected 257" bpe --in "$TXT" --vocab-size 16777217 --out "$TMP/outdir"
ok "bad vocab.json, merges.txt, vocabulary size, empty and binary inputs: one-line errors, no output"
