"""Crafts the hostile and broken dataset files of tests/it_hostile_data.sh with h5py.

usage: /usr/bin/python3 hostile_data.py OUT_DIR TOKENS.h5 TOKEN_DIR BPE_TOKENS.h5

OUT_DIR receives image files (good.h5 and one broken variant per case) and token files
(copies of TOKENS.h5, a char-tokenizer file from `dtrain prepare text`, each broken one way);
TOKEN_DIR (a token directory from `dtrain prepare text --shard-tokens`) is copied and its
index or a shard broken; BPE_TOKENS.h5 (--tokenizer bpe) is copied and its stored
vocab.json broken. Run with Debian's python3 (python3-h5py), not a virtual environment's.
"""
import os
import shutil
import sys

import h5py
import numpy as np

out, tokens, token_dir, bpe_tokens = sys.argv[1:5]
rng = np.random.default_rng(19)


def path(name):
    return os.path.join(out, name)


# ---- image files: /train and /test, 64 and 32 MNIST-shaped examples --------------------

def split(f, name, n, shape=(28, 28, 1), labels=None, **kw):
    g = f.create_group(name)
    g.create_dataset("images", data=rng.integers(0, 256, (n,) + shape, dtype=np.uint8), **kw)
    g.create_dataset("labels", data=labels if labels is not None else rng.integers(0, 10, n, dtype=np.uint8))


def images(name, train=None, test=None):
    """good.h5 with the train or test split replaced by what the callables write."""
    with h5py.File(path(name), "w") as f:
        (train or (lambda f: split(f, "train", 64)))(f)
        (test or (lambda f: split(f, "test", 32)))(f)


images("good.h5")


def train_images(data):
    def write(f):
        g = f.create_group("train")
        g.create_dataset("images", data=data)
        g.create_dataset("labels", data=np.zeros(data.shape[0], np.uint8))
    return write


images("dtype_float.h5", train=train_images(np.zeros((64, 28, 28, 1), np.float32)))
images("rank2.h5", train=train_images(np.zeros((64, 784), np.uint8)))
images("rank5.h5", train=train_images(np.zeros((64, 28, 28, 1, 1), np.uint8)))
images("scalar.h5", train=lambda f: (f.create_group("train").create_dataset("images", data=np.uint8(3)),
                                     f["train"].create_dataset("labels", data=np.zeros(1, np.uint8))))
images("not_dataset.h5", train=lambda f: f.create_group("train").create_group("images"))
images("labels_int16.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", data=np.zeros((64, 28, 28, 1), np.uint8)),
    f["train"].create_dataset("labels", data=np.zeros(64, np.int16))))
images("labels_count.h5", train=lambda f: split(f, "train", 64, labels=np.zeros(63, np.uint8)))
images("labels_range.h5", test=lambda f: split(f, "test", 32, labels=np.full(32, 10, np.uint8)))
images("test_shape.h5", test=lambda f: split(f, "test", 32, shape=(32, 32, 1)))
images("test_channels.h5", test=lambda f: split(f, "test", 32, shape=(28, 28, 3)))
# 10^9 images of 1000 x 1000: declared, never written (a few KB on disk)
images("huge_split.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", (10**9, 1000, 1000, 1), np.uint8, chunks=(1, 1000, 1000, 1)),
    f["train"].create_dataset("labels", (10**9,), np.uint8, chunks=(4096,))))
images("huge_image.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", (1, 100000, 100000, 1), np.uint8, chunks=(1, 1000, 1000, 1)),
    f["train"].create_dataset("labels", data=np.zeros(1, np.uint8))))
# H x W x C whose product wraps around 64 bits
images("wrap_image.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", (1, 2**32, 2**32, 1), np.uint8, chunks=(1, 1, 1, 1)),
    f["train"].create_dataset("labels", data=np.zeros(1, np.uint8))))
images("big_chunk.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", (400000, 28, 28, 1), np.uint8, chunks=(400000, 28, 28, 1)),
    f["train"].create_dataset("labels", (400000,), np.uint8)))


def half_written(f):
    g = f.create_group("train")
    d = g.create_dataset("images", (64, 28, 28, 1), np.uint8, chunks=(8, 28, 28, 1))
    d[:32] = rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)  # chunks 4..7 never written
    g.create_dataset("labels", data=rng.integers(0, 10, 64, dtype=np.uint8))


images("unwritten_chunks.h5", train=half_written)
images("unwritten_labels.h5", test=lambda f: (
    f.create_group("test").create_dataset("images", data=np.zeros((32, 28, 28, 1), np.uint8)),
    f["test"].create_dataset("labels", (32,), np.uint8)))  # contiguous, never allocated
with open(path("raw.bin"), "wb") as raw:
    raw.write(bytes(64 * 784))
images("external.h5", train=lambda f: (
    f.create_group("train").create_dataset("images", (64, 28, 28, 1), np.uint8,
                                           external=[(path("raw.bin"), 0, 64 * 784)]),
    f["train"].create_dataset("labels", data=np.zeros(64, np.uint8))))


def virtual(f):
    layout = h5py.VirtualLayout((64, 28, 28, 1), np.uint8)
    layout[:] = h5py.VirtualSource(path("gone.h5"), "/x", (64, 28, 28, 1))
    g = f.create_group("train")
    g.create_virtual_dataset("images", layout, fillvalue=0)
    g.create_dataset("labels", data=np.zeros(64, np.uint8))


images("virtual.h5", train=virtual)
good = open(path("good.h5"), "rb").read()
open(path("truncated.h5"), "wb").write(good[: len(good) // 2])
open(path("empty.h5"), "wb").close()
open(path("not_hdf5.h5"), "w").write("this is not an HDF5 file\n")


# ---- token files: copies of a real one, each broken one way ------------------------------

def token_copy(name, edit):
    shutil.copy(tokens, path(name))
    with h5py.File(path(name), "r+") as f:
        edit(f)


def set_attr(name, value, dtype=None):
    def edit(f):
        del f.attrs[name]
        if dtype is None:
            f.attrs[name] = value
        else:
            f.attrs.create(name, value, dtype=dtype)
    return edit


def replace_tokens(data=None, **kw):
    def edit(f):
        del f["train/tokens"]
        if data is not None:
            f["train"].create_dataset("tokens", data=data, **kw)
        else:
            f["train"].create_dataset("tokens", **kw)
    return edit


def chars(f):
    return f.attrs["chars"].decode() if isinstance(f.attrs["chars"], bytes) else f.attrs["chars"]


token_copy("vocab_huge.h5", set_attr("vocab_size", 10**8, np.int64))
token_copy("vocab_float.h5", set_attr("vocab_size", 65.0, np.float64))
token_copy("vocab_string.h5", set_attr("vocab_size", "65"))
token_copy("vocab_negative.h5", set_attr("vocab_size", -1, np.int64))
# the character table one character longer than the vocabulary (U+10FFFF sorts last)
token_copy("chars_long.h5", lambda f: set_attr("chars", chars(f) + "\U0010ffff")(f))
token_copy("chars_short.h5", lambda f: set_attr("chars", chars(f)[:-1])(f))
token_copy("chars_int.h5", set_attr("chars", 7, np.int64))
token_copy("format_wrong.h5", set_attr("format", "dtrain-images-v1"))
n_train = None
with h5py.File(tokens, "r") as f:
    n_train, vocab = f["train/tokens"].shape[0], int(f.attrs["vocab_size"])
token_copy("ids_over.h5", replace_tokens(np.full(n_train, vocab, np.uint16)))
token_copy("tokens_float.h5", replace_tokens(np.zeros(n_train, np.float32)))
token_copy("tokens_2d.h5", replace_tokens(np.zeros((n_train // 2, 2), np.uint16)))
token_copy("tokens_unwritten.h5", replace_tokens(shape=(n_train,), dtype=np.uint16, chunks=(4096,)))


def first_chunk_only(f):
    del f["train/tokens"]
    d = f["train"].create_dataset("tokens", (n_train,), np.uint16, chunks=(1024,))
    d[:1024] = 0


token_copy("tokens_partial.h5", first_chunk_only)


# ---- token directories: the index broken ----------------------------------------------------

def dir_copy(name, edit):
    shutil.copytree(token_dir, path(name))
    with h5py.File(os.path.join(path(name), "index.h5"), "r+") as f:
        edit(f)


def sizes(values, dtype=np.int64):
    def edit(f):
        del f["shard_sizes"]
        f.create_dataset("shard_sizes", data=np.array(values, dtype=dtype))
    return edit


with h5py.File(os.path.join(token_dir, "index.h5"), "r") as f:
    real = list(f["shard_sizes"][:])
dir_copy("dir_sizes_wrap", sizes([2**62] * 4 + real[1:]))
dir_copy("dir_sizes_float", sizes(real, np.float64))
dir_copy("dir_vocab_huge", set_attr("vocab_size", 10**8, np.int64))
dir_copy("dir_range", lambda f: f["train"].attrs.modify("count", np.int64(2**62)))
dir_copy("dir_sizes_unwritten", lambda f: (f.__delitem__("shard_sizes"),
                                           f.create_dataset("shard_sizes", (len(real),), np.int64, chunks=(1,))))
shutil.copytree(token_dir, path("dir_shard_lies"))
with h5py.File(os.path.join(path("dir_shard_lies"), "shard-00000.h5"), "r+") as f:
    n = f["tokens"].shape[0]
    del f["tokens"]
    f.create_dataset("tokens", (n,), np.uint16, chunks=(4096,), maxshape=(None,))


# ---- BPE token files: the stored vocab.json broken ------------------------------------------

def bpe_copy(name, edit):
    shutil.copy(bpe_tokens, path(name))
    with h5py.File(path(name), "r+") as f:
        edit(f)


def vocab_json(data=None, **kw):
    def edit(f):
        del f["tokenizer/vocab.json"]
        if data is None:
            f["tokenizer"].create_dataset("vocab.json", **kw)
        else:
            f["tokenizer"].create_dataset("vocab.json", data=data, **kw)
    return edit


with h5py.File(bpe_tokens, "r") as f:
    text = bytes(f["tokenizer/vocab.json"][:]).decode()
huge_id = text.rstrip().rstrip("}") + ', "zzzz": 100000000}'
bpe_copy("bpe_blob_float.h5", vocab_json(np.zeros(100, np.float32)))
bpe_copy("bpe_blob_unwritten.h5", vocab_json(shape=(len(text),), dtype=np.uint8, chunks=(256,)))
bpe_copy("bpe_id_huge.h5", vocab_json(np.frombuffer(huge_id.encode(), np.uint8)))
bpe_copy("bpe_not_json.h5", vocab_json(np.frombuffer(b"{\"a\": ", np.uint8)))
bpe_copy("bpe_vocab_mismatch.h5", lambda f: f.attrs.modify("vocab_size", np.int64(f.attrs["vocab_size"] - 1)))
