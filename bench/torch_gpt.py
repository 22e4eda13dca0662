#!/usr/bin/python3
"""PyTorch reference for dtrain's GPT benchmark (issue 5, "Quality and speed").

Trains the same GPT-2 style model as `dtrain gpt` with the same recipe on
the same token file: token + learned position embeddings, pre-LayerNorm
blocks with causal multi-head self-attention and a GELU (tanh) MLP of 4x
width, a final LayerNorm and an LM head tied to the token embedding, no
biases by default; GPT-2 initialisation; AdamW (decay on 2-D tensors
only), linear warm-up then cosine decay to min_lr, global-norm clipping;
random windows of block_size + 1 tokens from /train/tokens.

Only the training loop is timed, and its first --timing-warmup steps are
left out of the rate (allocator and thread pools settle there); they are
still trained, so the run is exactly --max-steps steps.  val_loss is the
mean token loss over --eval-iters batches of windows from /val/tokens,
taken once, after training.  Prints one JSON line on stdout; progress
lines (--log-interval) go to stderr.

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
    p.add_argument('--data', default='data/tinyshakespeare.h5',
                   help='token file from `dtrain prepare text`')
    p.add_argument('--n-layer', type=int, default=4)
    p.add_argument('--n-head', type=int, default=4)
    p.add_argument('--n-embd', type=int, default=128)
    p.add_argument('--block-size', type=int, default=64)
    p.add_argument('--bias', type=int, choices=(0, 1), default=0)
    p.add_argument('--batch-size', type=int, default=12)
    p.add_argument('--max-steps', type=int, default=2000)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--min-lr', type=float, default=1e-4)
    p.add_argument('--warmup-steps', type=int, default=100)
    p.add_argument('--lr-decay-steps', type=int, default=None,
                   help='step at which the cosine reaches min_lr (default: '
                        'max_steps, as dtrain does)')
    p.add_argument('--weight-decay', type=float, default=0.1)
    p.add_argument('--beta1', type=float, default=0.9)
    p.add_argument('--beta2', type=float, default=0.99)
    p.add_argument('--eps', type=float, default=1e-8)
    p.add_argument('--grad-clip', type=float, default=1.0)
    p.add_argument('--eval-iters', type=int, default=200,
                   help='validation batches (of batch_size windows)')
    p.add_argument('--log-interval', type=int, default=0,
                   help='print the loss to stderr every N steps (0 = off)')
    p.add_argument('--timing-warmup', type=int, default=5,
                   help='first steps left out of tokens_per_s')
    p.add_argument('--seed', type=int, default=0)
    add_thread_args(p)
    args = p.parse_args()
    if args.n_embd % args.n_head:
        p.error('--n-head must divide --n-embd')
    if args.lr_decay_steps is None:
        args.lr_decay_steps = args.max_steps
    return args


args = parse_args()
set_openblas_threads(args)

import h5py  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


class LayerNorm(nn.Module):
    """LayerNorm whose bias is optional (torch 1.13's nn.LayerNorm always
    has one, and the default recipe has none)."""

    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias,
                            1e-5)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention: one fused q,k,v projection, then an
    output projection back into the residual stream."""

    def __init__(self, cfg):
        super().__init__()
        c = cfg.n_embd
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(c, 3 * c, bias=bool(cfg.bias))
        self.proj = nn.Linear(c, c, bias=bool(cfg.bias))
        self.proj.residual = True
        t = cfg.block_size
        # True above the diagonal: the future positions a token may not see
        self.register_buffer(
            'future', torch.ones(t, t, dtype=torch.bool).triu(1),
            persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // self.n_head
        q, k, v = self.qkv(x).split(c, dim=2)
        # [B, T, C] -> [B, NH, T, hs]
        q, k, v = (z.view(b, t, self.n_head, hs).transpose(1, 2)
                   for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.future[:t, :t], float('-inf'))
        y = att.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg.n_embd
        self.fc = nn.Linear(c, 4 * c, bias=bool(cfg.bias))
        self.gelu = nn.GELU(approximate='tanh')
        self.proj = nn.Linear(4 * c, c, bias=bool(cfg.bias))
        self.proj.residual = True

    def forward(self, x):
        return self.proj(self.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm: each half reads a normalised copy of the residual
    stream and adds its output back to it."""

    def __init__(self, cfg):
        super().__init__()
        self.ln1 = LayerNorm(cfg.n_embd, cfg.bias)
        self.attn = SelfAttention(cfg)
        self.ln2 = LayerNorm(cfg.n_embd, cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg, vocab_size):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.lnf = LayerNorm(cfg.n_embd, cfg.bias)
        self.pos = torch.arange(cfg.block_size)
        self.init_weights(cfg.n_layer)

    def init_weights(self, n_layer):
        """GPT-2: N(0, 0.02) for weights and embeddings, and for the two
        projections that write into the residual stream a std shrunk by
        1/sqrt(2 n_layer), so the stream's variance does not grow with
        depth."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                std = 0.02
                if getattr(m, 'residual', False):
                    std /= math.sqrt(2 * n_layer)
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(self.pos[:t])
        for block in self.blocks:
            x = block(x)
        # the LM head is the token embedding itself (tied weights)
        logits = F.linear(self.lnf(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]),
                               targets.view(-1))


def lr_at(step, a):
    """dtrain's schedule (core/optim.c): linear warm-up reaching lr at the
    last warm-up step, then a half cosine down to min_lr at
    lr_decay_steps, min_lr after."""
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    if step >= a.lr_decay_steps:
        return a.min_lr
    ratio = (step - a.warmup_steps) / (a.lr_decay_steps - a.warmup_steps)
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (
        a.lr - a.min_lr)


def optimizer(model, a):
    """AdamW decaying only the 2-D tensors (weight matrices, embeddings):
    LayerNorm gains and biases are not shrunk towards zero."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {'params': [p for p in params if p.dim() >= 2],
         'weight_decay': a.weight_decay},
        {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0},
    ]
    return torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2),
                             eps=a.eps)


def batch(tokens, b, t, gen):
    """b windows of t + 1 tokens at random offsets: inputs and the same
    tokens shifted by one as targets."""
    starts = torch.randint(len(tokens) - t, (b,), generator=gen)
    win = torch.stack([tokens[s:s + t + 1] for s in starts.tolist()])
    return win[:, :-1].contiguous(), win[:, 1:].contiguous()


@torch.no_grad()
def val_loss(model, tokens, a):
    """Mean token loss over eval_iters batches; a fixed seed, so every run
    and every thread setting is scored on the same windows."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total = 0.0
    for _ in range(a.eval_iters):
        x, y = batch(tokens, a.batch_size, a.block_size, gen)
        total += model(x, y).item()
    model.train()
    return total / a.eval_iters


def train(model, tokens, a):
    """Train in place; return (timed seconds, timed steps, last loss)."""
    opt = optimizer(model, a)
    gen = torch.Generator().manual_seed(a.seed)
    skip = min(a.timing_warmup, a.max_steps - 1)
    start = time.perf_counter()
    loss = torch.zeros(())
    for step in range(a.max_steps):
        if step == skip:
            start = time.perf_counter()
        for g in opt.param_groups:
            g['lr'] = lr_at(step, a)
        x, y = batch(tokens, a.batch_size, a.block_size, gen)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        if a.log_interval and (step + 1) % a.log_interval == 0:
            print(f'step {step + 1}/{a.max_steps} | loss {loss.item():.4f}'
                  f' | lr {lr_at(step, a):.3e}', file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    return seconds, a.max_steps - skip, loss.item()


def main():
    start_torch(torch, args)
    with h5py.File(args.data, 'r') as h5:
        vocab = int(h5.attrs['vocab_size'])
        # int64: what nn.Embedding and cross_entropy index with
        train_tokens = torch.from_numpy(h5['train/tokens'][()].astype('int64'))
        val_tokens = torch.from_numpy(h5['val/tokens'][()].astype('int64'))

    model = GPT(args, vocab)
    params = sum(p.numel() for p in model.parameters())
    seconds, timed_steps, last_loss = train(model, train_tokens, args)
    vloss = val_loss(model, val_tokens, args)

    tokens = timed_steps * args.batch_size * args.block_size
    result = {
        'tokens_per_s': round(tokens / seconds, 1),
        'val_loss': round(vloss, 5),
        'params': params,
        'train_loss': round(last_loss, 5),
        **thread_counts(torch),
        'max_steps': args.max_steps,
        'timed_steps': timed_steps,
        'train_seconds': round(seconds, 4),
        'eval_iters': args.eval_iters,
        'batch_size': args.batch_size,
        'block_size': args.block_size,
        'n_layer': args.n_layer,
        'n_head': args.n_head,
        'n_embd': args.n_embd,
        'vocab_size': vocab,
        'seed': args.seed,
        'torch': torch.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
