#!/usr/bin/python3
"""PyTorch reference for dtrain's MNIST classification benchmark.

Trains LeNet-5 or a one-hidden-layer MLP with Adam (lr 1e-3) and
cross-entropy, reshuffling every epoch, then evaluates test accuracy.
Only the training loop is timed; data loading, warm-up and evaluation
are not.  Prints one JSON line on stdout.

Run with Debian's interpreter (/usr/bin/python3), where torch is
installed.  --openblas-threads sets OPENBLAS_NUM_THREADS before torch is
imported (bench/torch_bench.py).
"""
import argparse
import copy
import json
import sys
import time

from torch_bench import add_thread_args, set_openblas_threads, start_torch, thread_counts


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', choices=('lenet', 'mlp'), required=True)
    p.add_argument('--data', required=True,
                   help='HDF5 file with /train and /test images, labels')
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--init', choices=('xavier', 'default'), default='xavier',
                   help="xavier: Glorot-uniform weights, zero biases, as dtrain's classify "
                        "job; default: PyTorch's own U(+-1/sqrt(fan_in))")
    p.add_argument('--augment-shift', type=int, default=0,
                   help="move each training image by up to this many pixels each way, uncovered "
                        "pixels 0 (dtrain's augment_shift); 0 = off")
    add_thread_args(p)
    p.add_argument('--warmup', type=int, default=5,
                   help='untimed steps on a throw-away copy of the model')
    return p.parse_args()


args = parse_args()
set_openblas_threads(args)

import h5py  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from torch_mnist import MEAN, STD, lenet, load, mlp  # noqa: E402


def step(model, opt, loss_fn, x, y):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.detach()


def shift(xb, s, gen):
    """Each image moved by (dx, dy), uniform in [-s, s], uncovered pixels at the value that
    raw 0 normalises to, as dtrain's augment_shift does on the raw bytes."""
    n, _, h, w = xb.shape
    padded = nn.functional.pad(xb, (s, s, s, s), value=(0 - MEAN) / STD)
    d = torch.randint(-s, s + 1, (n, 2), generator=gen)
    out = torch.empty_like(xb)
    for i in range(n):
        dx, dy = int(d[i, 0]), int(d[i, 1])
        out[i] = padded[i, :, s - dy:s - dy + h, s - dx:s - dx + w]
    return out


def train(model, x, y, args):
    """Train in place; return (seconds, mean loss of the last epoch)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    n = len(x)
    model.train()
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        total = torch.zeros(())
        for i in range(0, n, args.batch):
            idx = order[i:i + args.batch]
            xb = shift(x[idx], args.augment_shift, gen) if args.augment_shift else x[idx]
            total += step(model, opt, loss_fn, xb, y[idx]) * len(idx)
    seconds = time.perf_counter() - start
    return seconds, total.item() / n


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = sum((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()
                  for i in range(0, len(x), batch))
    return int(correct) / len(x)


def warm_up(model, x, y, args):
    """Run a few steps on a copy, so allocator and kernel caches are hot."""
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for i in range(args.warmup):
        j = i * args.batch % len(x)
        step(model, opt, loss_fn, x[j:j + args.batch], y[j:j + args.batch])


def main():
    start_torch(torch, args)
    with h5py.File(args.data, 'r') as h5:
        x_train, y_train = load(h5, 'train')
        x_test, y_test = load(h5, 'test')

    model = lenet() if args.model == 'lenet' else mlp()
    if args.init == 'xavier':
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    warm_up(model, x_train, y_train, args)
    seconds, train_loss = train(model, x_train, y_train, args)
    test_acc = accuracy(model, x_test, y_test)

    result = {
        'model': args.model,
        'images_per_s': round(args.epochs * len(x_train) / seconds, 1),
        **thread_counts(torch),
        'epochs': args.epochs,
        'batch': args.batch,
        'seed': args.seed,
        'augment_shift': args.augment_shift,
        'n_train': len(x_train),
        'train_seconds': round(seconds, 4),
        'train_loss': round(train_loss, 5),
        'test_acc': round(test_acc, 5),
    }
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
