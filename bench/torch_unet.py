#!/usr/bin/python3
"""PyTorch reference for dtrain's diffusion benchmark.

Trains the diffusion job's class-conditional U-Net (382,721 parameters at
the defaults) on the MNIST HDF5 file for a fixed number of steps with the
same training step as `dtrain diffusion`: x in [-1, 1], t ~ U[0, 1000) per
example, eps ~ N(0, I), labels dropped to "no label" (10) with probability
0.1, MSE between eps and the predicted noise, gradients clipped to norm 1,
AdamW (lr 1e-3, linear warm-up over 200 steps, cosine to 1e-4, no weight
decay) and an EMA of the weights updated after every step.

The whole training set is decoded to a float tensor before the clock
starts, and a few warm-up steps (same model, same optimizer) run untimed.
Prints one JSON line on stdout.

Run with Debian's interpreter (/usr/bin/python3), where torch is
installed.  --openblas-threads sets OPENBLAS_NUM_THREADS before torch is
imported (bench/torch_bench.py).
"""
import argparse
import json
import math
import sys
import time

from torch_bench import add_thread_args, set_openblas_threads, start_torch, thread_counts


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='data/mnist.h5',
                   help='HDF5 file with /train/images (N,28,28,1) and labels')
    p.add_argument('--steps', type=int, default=40,
                   help='timed optimizer steps')
    p.add_argument('--warmup', type=int, default=3,
                   help='untimed steps before the clock starts')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    add_thread_args(p)
    return p.parse_args()


args = parse_args()
set_openblas_threads(args)

import h5py  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# The job's defaults (jobs/diffusion/diffusion.c, `dtrain diffusion --help`).
CHANNELS, CHANNEL_MULT, GROUPS, HEADS = 32, (1, 2, 2), 8, 4
NCLASSES = 10  # label NCLASSES means "no label"
T_STEPS, BETA_START, BETA_END = 1000, 1e-4, 0.02
P_UNCOND, EMA_DECAY = 0.1, 0.999
LR, MIN_LR, WARMUP_STEPS, TOTAL_STEPS = 1e-3, 1e-4, 200, 2500
GRAD_CLIP = 1.0


def sinusoid(t, dim):
    """[sin(t f_k), cos(t f_k)] with f_k = 10000^(-k / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    angles = t.double()[:, None] * freqs.double()[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class ResBlock(nn.Module):
    """GN, SiLU, conv3x3, + projection of silu(emb) per channel; GN, SiLU,
    conv3x3; plus the input (through a 1x1 conv when widths differ)."""

    def __init__(self, cin, cout, emb_dim):
        super().__init__()
        self.gn1 = nn.GroupNorm(GROUPS, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, cout)
        self.gn2 = nn.GroupNorm(GROUPS, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, semb):
        h = self.conv1(F.silu(self.gn1(x)))
        h = h + self.emb_proj(semb)[:, :, None, None]
        h = self.conv2(F.silu(self.gn2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class PixelAttention(nn.Module):
    """Full multi-head self-attention over the pixels of a map, residual.
    q, k, v are consecutive C-wide slices of one C -> 3C projection."""

    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.gn = nn.GroupNorm(GROUPS, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x):
        b, c, hgt, wid = x.shape
        tokens = self.gn(x).flatten(2).transpose(1, 2)  # B, HW, C
        q, k, v = self.qkv(tokens).chunk(3, dim=2)

        def split(z):  # B, HW, C -> B, heads, HW, C / heads
            return z.view(b, -1, self.heads, c // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(c // self.heads),
                            dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, -1, c)
        out = self.proj(out).transpose(1, 2).reshape(b, c, hgt, wid)
        return x + out


class UNet(nn.Module):
    """One residual block per level on each path, average pooling down,
    nearest upsampling and concatenation [upsampled, skip] on the way up,
    attention at the lowest level."""

    def __init__(self):
        super().__init__()
        widths = [CHANNELS * m for m in CHANNEL_MULT]
        emb = 4 * CHANNELS
        self.fc1 = nn.Linear(CHANNELS, emb)
        self.fc2 = nn.Linear(emb, emb)
        self.label_emb = nn.Embedding(NCLASSES + 1, emb)      # N(0, 1) init
        self.conv_in = nn.Conv2d(1, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = widths[0]
        for w in widths:
            self.down.append(ResBlock(c, w, emb))
            c = w
        self.attn = PixelAttention(c, HEADS)
        self.up = nn.ModuleList()                             # level L-2 .. 0
        for w in reversed(widths[:-1]):
            self.up.append(ResBlock(c + w, w, emb))
            c = w
        self.out_gn = nn.GroupNorm(GROUPS, c)
        self.out_conv = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x, t, y):
        temb = self.fc2(F.silu(self.fc1(sinusoid(t, CHANNELS))))
        semb = F.silu(temb + self.label_emb(y))
        h = self.conv_in(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, semb)
            if i < len(self.down) - 1:
                skips.append(h)
                h = F.avg_pool2d(h, 2)
        h = self.attn(h)
        for block in self.up:
            h = F.interpolate(h, scale_factor=2, mode='nearest')
            h = block(torch.cat([h, skips.pop()], dim=1), semb)
        return self.out_conv(F.silu(self.out_gn(h)))


def lr_at(step):
    """The trainer's schedule for optimizer step `step` (1-based):
    linear warm-up, then cosine from LR down to MIN_LR."""
    if step <= WARMUP_STEPS:
        return LR * step / WARMUP_STEPS
    frac = (step - WARMUP_STEPS) / max(1, TOTAL_STEPS - WARMUP_STEPS)
    cos = math.cos(math.pi * min(frac, 1.0))
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + cos)


class Trainer:
    def __init__(self, model, images, labels, batch, gen):
        self.model, self.images, self.labels = model, images, labels
        self.batch, self.gen = batch, gen
        self.params = list(model.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=LR, betas=(0.9, 0.999),
                                     eps=1e-8, weight_decay=0.0)
        self.ema = [p.detach().clone() for p in self.params]
        betas = torch.linspace(BETA_START, BETA_END, T_STEPS,
                               dtype=torch.float64)
        abar = torch.cumprod(1 - betas, 0)
        self.sqrt_abar = abar.sqrt().float()
        self.sqrt_1m_abar = (1 - abar).sqrt().float()
        self.order, self.pos, self.step_no = None, len(images), 0

    def next_batch(self):
        """Consecutive slices of a fresh permutation each epoch; a partial
        batch at the end of an epoch is dropped, as in dtrain."""
        if self.pos + self.batch > len(self.images):
            self.order = torch.randperm(len(self.images), generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return self.images[idx], self.labels[idx]

    def step(self):
        x0, y = self.next_batch()
        n = len(x0)
        t = torch.randint(0, T_STEPS, (n,), generator=self.gen)
        drop = torch.rand(n, generator=self.gen) < P_UNCOND
        y = torch.where(drop, torch.full_like(y, NCLASSES), y)
        eps = torch.randn(x0.shape, generator=self.gen)
        xt = (self.sqrt_abar[t].view(n, 1, 1, 1) * x0
              + self.sqrt_1m_abar[t].view(n, 1, 1, 1) * eps)
        self.step_no += 1
        for group in self.opt.param_groups:
            group['lr'] = lr_at(self.step_no)
        self.opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(self.model(xt, t, y), eps)
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, GRAD_CLIP)
        self.opt.step()
        self.update_ema()
        return loss.detach()

    @torch.no_grad()
    def update_ema(self):
        """dtrain's EMA: a copy after the first step, then a decay that
        ramps as (1 + step) / (10 + step) up to EMA_DECAY."""
        if self.step_no == 1:
            for e, p in zip(self.ema, self.params):
                e.copy_(p)
            return
        decay = min(EMA_DECAY, (1 + self.step_no) / (10 + self.step_no))
        torch._foreach_mul_(self.ema, decay)
        torch._foreach_add_(self.ema, self.params, alpha=1 - decay)


def load_train(path):
    """uint8 N,28,28,1 → float N,1,28,28 in [-1, 1]; int64 labels."""
    with h5py.File(path, 'r') as h5:
        images = torch.from_numpy(h5['train/images'][()])
        labels = torch.from_numpy(h5['train/labels'][()])
    x = images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    return x.contiguous(), labels.long()


def main():
    start_torch(torch, args)
    images, labels = load_train(args.data)
    model = UNet()
    params = sum(p.numel() for p in model.parameters())
    trainer = Trainer(model, images, labels, args.batch,
                      torch.Generator().manual_seed(args.seed))
    model.train()
    for _ in range(args.warmup):
        trainer.step()
    start = time.perf_counter()
    losses = [trainer.step() for _ in range(args.steps)]
    seconds = time.perf_counter() - start
    result = {
        'images_per_s': round(args.steps * args.batch / seconds, 1),
        'params': params,
        **thread_counts(torch),
        'steps': args.steps,
        'warmup_steps': args.warmup,
        'batch': args.batch,
        'train_seconds': round(seconds, 4),
        'last_loss': round(float(losses[-1]), 5) if losses else None,
        'torch': torch.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
