"""Reference ids from the Hugging Face `tokenizers` package for tests/it_bpe.sh.

  bpe_reference.py train CORPUS VOCAB_SIZE DIR   train a byte-level BPE, write DIR/vocab.json, merges.txt
  bpe_reference.py cases DIR                     write DIR/case-*.txt: generated text (bytes)
  bpe_reference.py encode TOKDIR FILE... OUTDIR  for each FILE: OUTDIR/NAME.ids (one id per line) and
                                                 OUTDIR/NAME.decoded (the ids decoded to text, UTF-8)

Files are read as bytes and decoded with errors="replace", the only way this package can be
handed text that is not valid UTF-8."""
import os
import random
import sys

from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.implementations import ByteLevelBPETokenizer
from tokenizers.models import BPE


def train(corpus, vocab_size, out):
    tok = ByteLevelBPETokenizer()
    tok.train([corpus], vocab_size=int(vocab_size), min_frequency=2, special_tokens=["<|endoftext|>"],
              show_progress=False)
    os.makedirs(out, exist_ok=True)
    tok.save_model(out)


def load(tokdir):
    tok = Tokenizer(BPE.from_file(os.path.join(tokdir, "vocab.json"), os.path.join(tokdir, "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t ", "\x0b", "\x0c", "\x1c", "\x1f",
          "\u00a0", "\u2003", "\u3000", "\u0085", "\u1680", "\u180e", "\u200b", "\u2028", "\u202f", " \u00a0 "]
WORDS = ["the", "The", "ROMEO", "hello", "world", "don't", "I'll", "we're", "they've", "she'd", "I'm", "it's",
         "IT'S", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'x", "''", "rock'n'roll", "café", "naïve", "über",
         "año", "中文", "日本語", "한국어", "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी", "ไทย",
         "e\u0301", "ﬁ", "Ⅻ", "²", "½", "٣", "１２３", "🙂", "👍🏽", "🏳️‍🌈", "\u0000", "\x7f", "\u00ad",
         "Ā", "ÿ", "x" * 70, "ab" * 40]
PUNCT = [".", ",", "!", "?", "...", "!!!", "?!", "--", "—", "“", "”", "(", ")", "[]", "{}", "@", "#", "$5",
         "%", "^&*", "<|endoftext|>", "::", ";", "'", "\"", "`", "~", "\\", "/", "+-=", "_", "|", "€", "©"]
NUMBERS = ["0", "7", "42", "1234567890", "3.14159", "1,000,000", "2024-01-01", "0x1F", "1e-9", "٣٤", "²³"]
INVALID = [b"\xff", b"\xfe\xff", b"\x80", b"\xbf\x80", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80",
           b"\xe2\x82", b"\xf0\x9f\x99", b"\xf4\x90\x80\x80", b"\xf5\x80", b"\xc3", b"\xe2\x28\xa1"]


def generated(seed, n):
    rng = random.Random(seed)
    parts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.35:
            parts.append(rng.choice(WORDS).encode())
        elif kind < 0.6:
            parts.append(rng.choice(SPACES).encode())
        elif kind < 0.75:
            parts.append(rng.choice(PUNCT).encode())
        elif kind < 0.9:
            parts.append(rng.choice(NUMBERS).encode())
        else:
            parts.append(rng.choice(INVALID))
    return b"".join(parts)


def cases(out):
    os.makedirs(out, exist_ok=True)
    fixed = {
        "spaces-end": b"hello   ",
        "spaces-only": b"   \t\n  ",
        "newlines": b"a\n\nb\n\n\n c\r\n\r\nd \n",
        "contractions": b"I'm don't we're 'S 's'd'll''ve",
        "digits": b"a1b22 333 4444a 12.5% 1,2,3",
        "invalid": b"ok \xff\xfe bad \xc0\x80 \xed\xa0\x80 \xe2\x82 end\xf0\x9f\x99",
        "long-run": b" " * 3000 + b"x" + b"-" * 2000 + b"\n" * 500,
        "unicode-space": "a\u00a0b\u3000c\u2003 d\u0085e\u1680f\u180eg".encode(),
    }
    for i in range(6):
        fixed["random-%d" % i] = generated(i, 4000)
    for name, data in fixed.items():
        with open(os.path.join(out, "case-%s.txt" % name), "wb") as f:
            f.write(data)


def encode(tokdir, files, out):
    tok = load(tokdir)
    os.makedirs(out, exist_ok=True)
    for path in files:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        ids = tok.encode(text).ids
        name = os.path.basename(path)
        with open(os.path.join(out, name + ".ids"), "w") as f:
            f.write("".join("%d\n" % i for i in ids))
        with open(os.path.join(out, name + ".decoded"), "wb") as f:
            f.write(tok.decode(ids).encode("utf-8"))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "train":
        train(*sys.argv[2:5])
    elif cmd == "cases":
        cases(sys.argv[2])
    elif cmd == "encode":
        encode(sys.argv[2], sys.argv[3:-1], sys.argv[-1])
    else:
        sys.exit("unknown command " + cmd)
