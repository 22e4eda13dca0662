"""tokenizers_encode.py DIR FILE...: the Hugging Face tokenizers package encoding the same
files with the same vocab.json + merges.txt (ByteLevel pre-tokenizer), on one core
(RAYON_NUM_THREADS=1 set by the caller), in CPU seconds, best of 3. Two ways, since the
package is slow on one huge string: the whole text in one encode() call, and its lines
through encode_batch(). Prints "FILE bytes ids seconds MB/s way" per way."""
import os
import sys
import time

from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import BPE


def load(d):
    tok = Tokenizer(BPE.from_file(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


def best_of_3(d, fn):
    best, n = 1e30, 0
    for _ in range(3):
        tok = load(d)  # a fresh cache, as for dtrain
        t0 = time.process_time()
        n = fn(tok)
        best = min(best, time.process_time() - t0)
    return best, n


def main():
    d = sys.argv[1]
    for path in sys.argv[2:]:
        data = open(path, "rb").read()
        text = data.decode("utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        for way, fn in (("whole", lambda t: len(t.encode(text).ids)),
                        ("lines", lambda t: sum(len(e.ids) for e in t.encode_batch(lines)))):
            sec, n = best_of_3(d, fn)
            print("%s %d %d %.4f %.2f %s" % (path, len(data), n, sec, len(data) / sec / 1e6, way), flush=True)


main()
