#!/usr/bin/python3
"""Does dtrain's classify job train like PyTorch, step for step?

Given a dtrain run made with --shuffle 0 (batches in file order) and a checkpoint at the
end of every epoch, this loads the first checkpoint's weights and Adam state into the same
network in PyTorch, trains on the same batches in the same order, and at each later
checkpoint prints how far PyTorch's weights are from dtrain's (relative L2 difference over
all parameters, and the largest absolute difference), with both test accuracies at epoch
ends. With --restart, PyTorch starts again from each checkpoint, so a row measures only the
steps since the previous one: one step, with a checkpoint every step. Run it through
bench/torch_parity.sh, which makes the dtrain run.

Run with Debian's interpreter (/usr/bin/python3), where torch and h5py are installed.
"""
import argparse
import glob
import json
import os
import sys

import h5py
import torch
from torch import nn

from torch_mnist import lenet, load, mlp


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', required=True, help='dtrain run directory (--out of the run)')
    p.add_argument('--data', required=True, help='the HDF5 file the run trained on')
    p.add_argument('--model', choices=('lenet', 'mlp'), required=True)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--restart', action='store_true',
                   help='restart PyTorch from each checkpoint, so that every row measures only '
                        'the steps since the one before')
    p.add_argument('--quiet', action='store_true', help='print only rows at epoch ends, and the summary')
    return p.parse_args()


def ckpt_tensors(f, group, model):
    """The group's tensors, in the order of the model's parameters (weight, bias per layer).
    dtrain names them <kind><layer index>.weight|bias; its layer indices match the
    Sequential's, but for the Flatten PyTorch puts before the first linear layer."""
    names = sorted(f[group].keys(), key=lambda n: (int(''.join(c for c in n.split('.')[0] if c.isdigit())),
                                                   n.endswith('.bias')))
    out = [torch.from_numpy(f[group + '/' + n][()]) for n in names]
    shapes = [tuple(p.shape) for p in model.parameters()]
    got = [tuple(t.shape) for t in out]
    if got != shapes:
        sys.exit(f'{f.filename}: /{group}: tensor shapes {got}, expected {shapes} for this model')
    return out


def flat(tensors):
    return torch.cat([t.reshape(-1).double() for t in tensors])


def ckpt_step(path):
    return int(os.path.basename(path)[len('ckpt-'):-len('.h5')])


def load_state(path, model, opt):
    """Loads a dtrain checkpoint's weights and Adam moments into model and opt; returns
    (step, epoch) of the checkpoint."""
    step = ckpt_step(path)
    with h5py.File(path, 'r') as f, torch.no_grad():
        for p, t, m, v in zip(model.parameters(), ckpt_tensors(f, 'params', model),
                              ckpt_tensors(f, 'adam_m', model), ckpt_tensors(f, 'adam_v', model)):
            p.copy_(t)
            opt.state[p] = {'step': torch.tensor(float(step)), 'exp_avg': m.clone(), 'exp_avg_sq': v.clone()}
        return step, int(f.attrs['epoch'])


@torch.no_grad()
def accuracy(model, x, y):
    return (model(x).argmax(1) == y).double().mean().item()


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    ckpts = sorted(glob.glob(os.path.join(args.run, 'checkpoints', 'ckpt-*.h5')))
    if len(ckpts) < 2:
        sys.exit(f'{args.run}/checkpoints: need a checkpoint per epoch (ckpt_keep 0), found {len(ckpts)}')
    with h5py.File(args.data, 'r') as h5:
        x_train, y_train = load(h5, 'train')
        x_test, y_test = load(h5, 'test')
    metrics = [json.loads(line) for line in open(os.path.join(args.run, 'metrics.jsonl'))
               if '"epoch"' in line and '"test_acc"' in line]
    dtrain_acc = {m['epoch']: m['test_acc'] for m in metrics}

    model = lenet() if args.model == 'lenet' else mlp()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    steps = len(x_train) // args.batch
    step, epoch = load_state(ckpts[0], model, opt)
    print(f'start: {os.path.basename(ckpts[0])} (epoch {epoch}, step {step}); {steps} steps per epoch, '
          f'batches in file order' + ('; PyTorch restarts from each checkpoint' if args.restart else ''))
    print(f'{"epoch":>5} {"step":>6} {"rel. L2 diff":>13} {"max abs diff":>13} {"dtrain acc":>11} {"torch acc":>10}')
    worst = (0.0, 0, 0.0)
    for prev, path in zip(ckpts, ckpts[1:]):
        if args.restart:
            step, _ = load_state(prev, model, opt)
        model.train()
        until = ckpt_step(path)
        while step < until:
            i = step % steps
            xb, yb = x_train[i * args.batch:(i + 1) * args.batch], y_train[i * args.batch:(i + 1) * args.batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            opt.step()
            step += 1
        model.eval()
        with h5py.File(path, 'r') as f:
            ref = flat(ckpt_tensors(f, 'params', model))
        epoch = step // steps
        ours = flat([p.detach() for p in model.parameters()])
        rel = ((ours - ref).norm() / ref.norm()).item()
        mx = (ours - ref).abs().max().item()
        acc = dtrain_acc.get(epoch, float('nan')) if step % steps == 0 else float('nan')
        worst = max(worst, (rel, step, mx))
        if args.quiet and step % steps:
            continue
        print(f'{epoch:5d} {step:6d} {rel:13.3e} {mx:13.3e} {acc:11.4f} {accuracy(model, x_test, y_test):10.4f}')
    print(f'largest difference: {worst[0]:.3e} relative L2, {worst[2]:.3e} max abs, at step {worst[1]} '
          f'({len(ckpts) - 1} checkpoints compared)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
