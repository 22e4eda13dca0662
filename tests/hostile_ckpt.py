"""Hostile checkpoints for tests/it_hostile_ckpt.sh, crafted with h5py (Debian's python3-h5py).

    /usr/bin/python3 hostile_ckpt.py MID.h5 END.h5 V1.h5 OUTDIR
    /usr/bin/python3 hostile_ckpt.py set-config FILE.h5 KEY=VALUE...   (edits its stored config)

MID.h5 is a classify checkpoint of a 1-rank, 1-epoch run (125 steps, stored epochs = 1) at
step 20 of epoch 0, END.h5 the same run's last (epoch 1, step_in_epoch 0), V1.h5 the
format-1 checkpoint in tests/data. Each case is a copy with one lie planted; OUTDIR/cases
lists them, one per line: NAME.h5, a tab, the text the one-line error must hold. Resuming
any of them must exit 2 with that line, quickly, without a crash."""
import os
import shutil
import struct
import sys

import re

import h5py
import numpy as np

if sys.argv[1] == "set-config":
    with h5py.File(sys.argv[2], "r+") as f:
        text = bytes(f.attrs["config"]).decode()
        for kv in sys.argv[3:]:
            key, value = kv.split("=", 1)
            text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        f.attrs["config"] = np.bytes_(text.encode())
    sys.exit(0)

MID, END, V1, OUT = sys.argv[1:5]
cases = []


def case(name, src, want):
    """Decorator: copies src to OUT/name.h5, lets fn edit it, records the expected text."""
    def wrap(fn):
        path = os.path.join(OUT, name + ".h5")
        shutil.copyfile(src, path)
        if fn is not None:
            with h5py.File(path, "r+") as f:
                fn(f)
        cases.append((name + ".h5", want))
        return fn
    return wrap


def ts(f):
    return f["train_state"].attrs


def replace(f, path, data, **kw):
    del f[path]
    f.create_dataset(path, data=data, **kw)


# ---- step, epoch, step_in_epoch: ranges and consistency ----------------------------------
@case("step_negative", MID, "step = -5, expected 0..9007199254740991")
def _(f): ts(f)["step"] = np.int64(-5)


@case("step_huge", MID, "step = 4611686018427387904, expected 0..")
def _(f): ts(f)["step"] = np.int64(2**62)


@case("epoch_negative", MID, "epoch = -1, expected 0..")
def _(f): ts(f)["epoch"] = np.int64(-1)


@case("epoch_lies_about_steps", MID, "step = 20, expected at least epoch + step_in_epoch = 7 + 20")
def _(f): ts(f)["epoch"] = np.int64(7)


@case("epoch_past_config", END, "epoch = 2, expected at most its config's epochs = 1")
def _(f): ts(f)["epoch"] = np.int64(2)


@case("step_in_epoch_at_finished_run", END, "epoch = 1 (the run's last) with step_in_epoch = 5, expected 0")
def _(f):
    ts(f)["epoch_steps"] = np.int64(125)
    ts(f)["step_in_epoch"] = np.int64(5)


@case("step_in_epoch_past_epoch", MID, "step_in_epoch = 126, expected at most epoch_steps = 125")
def _(f): ts(f)["step_in_epoch"] = np.int64(126)


@case("step_in_epoch_negative", MID, "step_in_epoch = -3, expected 0..")
def _(f): ts(f)["step_in_epoch"] = np.int64(-3)


@case("optimizer_steps_past_step", MID, "optimizer_steps = 21, expected at most step = 20")
def _(f): ts(f)["optimizer_steps"] = np.int64(21)


@case("lr_nan", MID, "lr = nan, expected a finite number >= 0")
def _(f): ts(f)["lr"] = np.float64("nan")


@case("step_as_float", MID, "/train_state/step: stored as floats, expected integers")
def _(f): ts(f)["step"] = np.float64(20.5)


@case("step_as_string", MID, "/train_state/step: stored as strings, expected integers")
def _(f): ts(f)["step"] = np.bytes_(b"20")


@case("step_as_array", MID, "/train_state/step: 2 values, expected a single value")
def _(f): ts(f)["step"] = np.array([20, 20], dtype=np.int64)


# ---- world size and the per-rank state (RNG streams) -------------------------------------
@case("world_zero", MID, "world_size = 0, expected 1..1048576")
def _(f): ts(f)["world_size"] = np.int32(0)


@case("world_larger_than_rng_rows", MID, "/train_state/rng: dimension 0 is 1, expected 3")
def _(f): ts(f)["world_size"] = np.int32(3)


@case("rng_3_words", MID, "/train_state/rng: dimension 1 is 3, expected 4")
def _(f): replace(f, "train_state/rng", np.ones((1, 3), dtype=np.uint64))


@case("rng_rank_1", MID, "/train_state/rng: expected 2 dimensions, found 1")
def _(f): replace(f, "train_state/rng", np.ones(4, dtype=np.uint64))


@case("rng_all_zeros", MID, "rng of rank 0 is all zeros")
def _(f): replace(f, "train_state/rng", np.zeros((1, 4), dtype=np.uint64))


@case("rng_as_floats", MID, "/train_state/rng: stored as floats, expected integers")
def _(f): replace(f, "train_state/rng", np.ones((1, 4), dtype=np.float64))


@case("epoch_loss_inf", MID, "epoch_loss_sum of rank 0 = inf, expected a finite number")
def _(f): replace(f, "train_state/epoch_loss_sum", np.array([np.inf]))


# ---- the job's state ----------------------------------------------------------------------
@case("job_state_too_long", MID, "covers 8001 examples, the training set has 8000")
def _(f): replace(f, "job_state/data_consumed", np.zeros(8001, dtype=np.uint8))


@case("job_state_bad_flag", MID, "data_consumed[3] = 7, expected 0 or 1")
def _(f):
    d = np.array(f["job_state/data_consumed"])
    d[3] = 7
    replace(f, "job_state/data_consumed", d)


def v1_blob(world, job_len):
    def edit(f):
        blob = np.array(f["job_state"])
        blob[:16] = np.frombuffer(struct.pack("<IIQ", 0x64747231, world, job_len), dtype=np.uint8)
        f["job_state"][...] = blob  # through the filter: the checksum stays valid
    return edit


# a length that wraps: 16 + world * 16 + job_len = the blob's 8,049 bytes modulo 2^64
case("v1_job_len_wraps", V1, "world 4294967295, expected 1..1048576")(
    v1_blob(2**32 - 1, (8049 - 16 - (2**32 - 1) * 16) % 2**64))
case("v1_job_len_huge", V1, "its header says 2 ranks and 18446744073709551615 job bytes, the blob holds 8049")(
    v1_blob(2, 2**64 - 1))


# ---- tensors: dtypes and ranks ------------------------------------------------------------
@case("tensor_as_integers", MID, "/params/fc0.bias: stored as integers, expected floats")
def _(f): replace(f, "params/fc0.bias", np.array([1, 2], dtype=np.int32))


@case("tensor_wrong_rank", MID, "/params/fc0.bias: shape [2, 1] in the checkpoint, expected [2]")
def _(f): replace(f, "params/fc0.bias", np.zeros((2, 1), dtype=np.float32))


@case("compound_dataset", MID, "/params/extra: a dataset of compound records, expected numbers")
def _(f): f.create_dataset("params/extra", data=np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]))


# ---- storage that lies: data declared but never written -----------------------------------
@case("unwritten_huge_chunked", MID, "/params/huge: declares 4398046511104 bytes of data, more than the file's")
def _(f): f.create_dataset("params/huge", shape=(2**40,), dtype="<f4", chunks=(2**20,))


@case("unwritten_huge_fletcher", MID, "/params/huge: declares 4398046511104 bytes of data, more than the file's")
def _(f): f.create_dataset("params/huge", shape=(2**40,), dtype="<f4", chunks=(2**20,), fletcher32=True)


@case("unwritten_chunks", MID, "/params/partial: 1 of its 8 chunks are stored (the rest were never written)")
def _(f):
    d = f.create_dataset("params/partial", shape=(8192,), dtype="<f4", chunks=(1024,), fletcher32=True)
    d[:1024] = 1.0


@case("unwritten_contiguous", MID, "/params/never: 0 of its 16384 bytes are stored")
def _(f): f.create_dataset("params/never", shape=(4096,), dtype="<f4")


@case("compressed", MID, "/params/packed: filter 1 (deflate) on its chunks")
def _(f): f.create_dataset("params/packed", data=np.zeros(1000, dtype="<f4"), compression="gzip")


@case("external_storage", MID, "/params/outside: its data is in external files")
def _(f): f.create_dataset("params/outside", shape=(4,), dtype="<f4", external=[("/etc/hostname", 0, 16)])


# ---- the file and its attributes ----------------------------------------------------------
@case("format_version_array", MID, "attribute 'format_version': 2 values, expected one")
def _(f): f.attrs["format_version"] = np.array([2, 2], dtype=np.int32)


@case("config_with_nul", MID, "attribute 'config': a NUL byte at offset")
def _(f):
    text = bytes(f.attrs["config"])
    f.attrs["config"] = np.bytes_(text.replace(b"\nepochs = 1\n", b"\nepochs = 1\n\0max_steps = 9\n"))


def raw_case(name, want, data):
    with open(os.path.join(OUT, name + ".h5"), "wb") as out:
        out.write(data)
    cases.append((name + ".h5", want))


with open(MID, "rb") as src:
    whole = src.read()
raw_case("truncated", "cannot open as HDF5", whole[: len(whole) // 2])
raw_case("not_hdf5", "cannot open as HDF5", b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)

with open(os.path.join(OUT, "cases"), "w") as out:
    for name, want in cases:
        out.write(f"{name}\t{want}\n")
