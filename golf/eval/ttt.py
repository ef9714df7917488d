"""Legal score-first test-time training (reference.md 5.2): the reported number is s_0.

The exact-once sliding windows of golf.eval.sliding are grouped into chunks of `chunk_tokens`
by the input position of their first scored target. For each chunk c in order:
  1. SCORE: eval mode + inference mode; this rank's contiguous share of chunk c's windows is
     scored and added to the one s_0 accumulator (the reported sum);
  2. the last chunk stops here: nothing after it is left to score, so it is never trained on;
  3. TRAIN: the adapted parameters take `epochs` passes over chunk c's own tokens only, all of
     which have been scored by then (AdamW created once, cosine LR over chunks, gradients
     all-reduced by hand, then clipped).
There is no temperature and no second scoring pass: val_bpb_s0 is the only score produced.

Adapted parameters: every parameter of the last `adapt_last_blocks` blocks plus every parameter
whose name contains "scale"; the rest are frozen during TTT and their requires_grad flags are
restored afterwards. The adapted weights stay in the model.

Distributed: every rank issues the same collectives in the same order (one gradient all-reduce
per optimiser step, ranks without sequences left take zero-gradient steps; one budget
all-reduce per chunk when a budget is given; the three sums once at the end), so no rank waits
on a collective another rank never issues.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
import torch.distributed as dist

from golf.budget import WallclockBudget
from golf.errors import BudgetExceeded, GolfError
from golf.eval.bpb import BpbAccumulator, ByteLUTs
from golf.eval.sliding import (
    SlidingWindows,
    bf16_autocast,
    rank_share,
    score_windows,
    sliding_windows,
    synchronize,
)


class TTTObserver(Protocol):
    """Receives what the loop reads, so that tests and audits can prove score-before-update."""

    def on_score(self, chunk: int, target_positions: torch.Tensor, nll: torch.Tensor) -> None:
        """Target positions (1..N) just scored and counted in s_0, with their float32 NLLs."""

    def on_train_step(self, chunk: int, target_positions_read: range) -> None:
        """One optimiser step is about to read these targets (empty for a zero-gradient step)."""


@dataclass(frozen=True)
class TTTResult:
    val_bpb_s0: float
    val_loss_s0: float
    n_tokens: int
    n_bytes: int
    chunks: int
    trained_chunks: int
    optimizer_steps: int
    adapted_params: int
    seconds: float


def windows_by_chunk(windows: SlidingWindows, chunk_tokens: int, n_chunks: int) -> list[SlidingWindows]:
    """Window k belongs to chunk floor(first scored input position / chunk_tokens), capped at the last."""
    chunk_of = np.minimum(windows.first_scored_inputs // chunk_tokens, n_chunks - 1)
    bounds = np.searchsorted(chunk_of, np.arange(n_chunks + 1), side="left")
    return [windows[bounds[c] : bounds[c + 1]] for c in range(n_chunks)]


def adapted_parameters(model, adapt_last_blocks: int) -> list[torch.nn.Parameter]:
    """The last `adapt_last_blocks` blocks' parameters plus every parameter named "*scale*"."""
    n_blocks = len(model.blocks)
    if not 0 <= adapt_last_blocks <= n_blocks:
        raise GolfError(f"TTT adapts the last {adapt_last_blocks} blocks but the model has {n_blocks}")
    in_last_blocks = {
        id(p) for block in list(model.blocks)[n_blocks - adapt_last_blocks :] for p in block.parameters()
    }
    return [p for name, p in model.named_parameters() if id(p) in in_last_blocks or "scale" in name]


@contextlib.contextmanager
def only_these_trainable(model, params: list[torch.nn.Parameter]):
    """requires_grad only on `params` inside the block; every flag restored on the way out."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    chosen = {id(p) for p in params}
    try:
        for p, _ in saved:
            p.requires_grad_(id(p) in chosen)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def cosine_lr(lr0: float, chunk: int, n_chunks: int) -> float:
    """lr0 * (1 + cos(pi * c / (n_c - 1))) / 2: lr0 on the first chunk, 0 on the last."""
    return lr0 * 0.5 * (1.0 + math.cos(math.pi * chunk / max(n_chunks - 1, 1)))


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Replace each rank's gradients by their mean over ranks, in one flat all-reduce."""
    if world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # gloo has no AVG
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def check_budget(budget: WallclockBudget | None, world: int, phase: str) -> None:
    """Raise BudgetExceeded on every rank together when any rank's clock says the budget is spent."""
    if budget is None:
        return
    spent = budget.exceeded()
    if world > 1:
        flag = torch.tensor([float(spent)], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        spent = bool(flag.item())
    if spent:
        raise BudgetExceeded(
            f"{budget.name} budget exceeded during {phase}: {budget.elapsed():.1f} s > {budget.limit_s:.1f} s"
        )


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@dataclass(frozen=True)
class _TrainSpec:
    seq_len: int
    epochs: int
    micro_batch_seqs: int
    grad_clip: float
    rank: int
    world: int
    device: torch.device


def train_on_chunk(
    model,
    val_tokens: torch.Tensor,
    chunk_start: int,
    chunk_end: int,
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    spec: _TrainSpec,
    on_step: Callable[[range], None] | None,
) -> int:
    """`spec.epochs` passes over the whole sequences in target positions chunk_start+1 .. chunk_end.

    Returns the number of optimiser steps, which is the same on every rank.
    """
    n_seqs = (chunk_end - chunk_start) // spec.seq_len
    mine = rank_share(n_seqs, spec.rank, spec.world)
    most_per_rank = -(-n_seqs // spec.world)  # rank shares differ by at most one sequence
    steps_per_epoch = -(-most_per_rank // spec.micro_batch_seqs)
    for _ in range(spec.epochs):
        for step in range(steps_per_epoch):
            first = min(mine.start + step * spec.micro_batch_seqs, mine.stop)
            last = min(first + spec.micro_batch_seqs, mine.stop)
            token_from = chunk_start + first * spec.seq_len
            token_to = chunk_start + last * spec.seq_len  # inclusive: the last target read
            if on_step is not None:
                on_step(range(token_from + 1, token_to + 1) if last > first else range(0))
            optimizer.zero_grad(set_to_none=True)
            if last > first:
                tokens = val_tokens[token_from : token_to + 1].to(spec.device, dtype=torch.int64)
                inputs = tokens[:-1].view(-1, spec.seq_len)
                targets = tokens[1:].view(-1, spec.seq_len)
                with bf16_autocast(spec.device):
                    loss = model(inputs, targets)
                loss.backward()
            average_gradients(params, spec.world)
            if spec.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, spec.grad_clip)
            optimizer.step()
    return spec.epochs * steps_per_epoch


def eval_score_first_ttt(
    model,
    val_tokens: torch.Tensor,
    luts: ByteLUTs,
    *,
    seq_len: int,
    stride: int,
    chunk_tokens: int,
    epochs: int,
    lr: float,
    adapt_last_blocks: int,
    micro_batch_seqs: int,
    grad_clip: float,
    batch_windows: int = 32,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    budget: WallclockBudget | None = None,
    observer: TTTObserver | None = None,
    log: Callable[[str], None] | None = None,
) -> TTTResult:
    """Score-first TTT over `val_tokens` (N+1 tokens); returns the s_0 score, identical on every rank."""
    if chunk_tokens < 1 or micro_batch_seqs < 1 or epochs < 0:
        raise GolfError("TTT needs chunk_tokens >= 1, micro_batch_seqs >= 1 and epochs >= 0")
    device = torch.device(device)
    synchronize(device)
    started = time.perf_counter()
    n_targets = val_tokens.numel() - 1
    n_chunks = -(-n_targets // chunk_tokens)
    chunks = windows_by_chunk(sliding_windows(n_targets, seq_len, stride), chunk_tokens, n_chunks)
    params = adapted_parameters(model, adapt_last_blocks)
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    spec = _TrainSpec(seq_len, epochs, micro_batch_seqs, grad_clip, rank, world, device)
    s0 = BpbAccumulator(device)
    trained_chunks = optimizer_steps = 0
    was_training = model.training
    # eval mode throughout: the evaluated model is the dequantised artifact, with no train-only paths
    model.eval()
    try:
        with only_these_trainable(model, params):
            for c, chunk in enumerate(chunks):
                check_budget(budget, world, f"TTT chunk {c}")
                with torch.inference_mode():
                    score_windows(
                        model,
                        val_tokens,
                        chunk[rank_share(len(chunk), rank, world)],
                        luts,
                        s0,
                        seq_len=seq_len,
                        batch_windows=batch_windows,
                        device=device,
                        on_scored=None if observer is None else (lambda pos, nll, c=c: observer.on_score(c, pos, nll)),
                    )
                if c == n_chunks - 1:
                    break  # never adapt on the final chunk: nothing is left to score
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(lr, c, n_chunks)
                steps = train_on_chunk(
                    model,
                    val_tokens,
                    c * chunk_tokens,
                    min((c + 1) * chunk_tokens, n_targets),
                    params,
                    optimizer,
                    spec,
                    None if observer is None else (lambda read, c=c: observer.on_train_step(c, read)),
                )
                optimizer_steps += steps
                trained_chunks += steps > 0
                if log is not None and rank == 0 and s0.n_bytes > 0 and c % max(1, n_chunks // 10) == 0:
                    log(f"ttt chunk {c + 1}/{n_chunks}: rank-local s_0 bpb so far {s0.val_bpb:.6f}")
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    s0.all_reduce()
    synchronize(device)
    return TTTResult(
        val_bpb_s0=s0.val_bpb,
        val_loss_s0=s0.val_loss,
        n_tokens=s0.n_tokens,
        n_bytes=s0.n_bytes,
        chunks=n_chunks,
        trained_chunks=trained_chunks,
        optimizer_steps=optimizer_steps,
        adapted_params=sum(p.numel() for p in params),
        seconds=time.perf_counter() - started,
    )
