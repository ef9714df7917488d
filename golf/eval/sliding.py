"""Sliding-window evaluation (reference.md 5.1): every validation target scored exactly once.

The validation stream has N targets: target position j (1..N) is token j, predicted from tokens
0..j-1. Window k starts at k*stride and reads min(seq_len, N - start) input tokens. In exact mode
window k scores its targets from the previous window's scored end (or its own start) to its end,
and the windows stop after the first one that reaches N, so each target is counted once with at
least seq_len - stride tokens of context. `records_compat=True` reproduces the records' rule
instead (windows at every multiple of stride below N, each scoring its last `stride` targets),
which counts the final targets several times; it exists only to measure that difference.

The scoring loop here is shared with the score-first TTT of golf.eval.ttt.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from golf.errors import GolfError
from golf.eval.bpb import BpbAccumulator, ByteLUTs
from golf.eval.losses import softcap_cross_entropy


@dataclass(frozen=True)
class SlidingWindows:
    """Window k reads input positions starts[k] .. starts[k]+lengths[k]-1 and scores its offsets
    scored_from[k] .. lengths[k]-1, i.e. target positions starts[k]+scored_from[k]+1 .. starts[k]+lengths[k]."""

    starts: np.ndarray
    lengths: np.ndarray
    scored_from: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return zip(self.starts.tolist(), self.lengths.tolist(), self.scored_from.tolist())

    def __getitem__(self, index: slice) -> "SlidingWindows":
        return SlidingWindows(self.starts[index], self.lengths[index], self.scored_from[index])

    @property
    def first_scored_inputs(self) -> np.ndarray:
        """Input position of each window's first scored target (target position minus one)."""
        return self.starts + self.scored_from

    @property
    def n_scored(self) -> int:
        return int((self.lengths - self.scored_from).sum())


def sliding_windows(n_targets: int, seq_len: int, stride: int, records_compat: bool = False) -> SlidingWindows:
    """The windows of reference.md 5.1 for a stream of `n_targets` targets (exact-once by default)."""
    if n_targets < 1 or seq_len < 1 or not 1 <= stride <= seq_len:
        raise GolfError(f"bad sliding window shape: {n_targets} targets, context {seq_len}, stride {stride} "
                        "(need at least one target and 1 <= stride <= context)")
    if records_compat:
        starts = np.arange(0, n_targets, stride, dtype=np.int64)
    else:
        # the first window that reaches N is the last one
        n_windows = 1 + max(0, -(-(n_targets - seq_len) // stride))
        starts = np.arange(n_windows, dtype=np.int64) * stride
    lengths = np.minimum(seq_len, n_targets - starts)
    if records_compat:
        scored_from = np.maximum(lengths - stride, 0)
    else:
        previous_end = np.concatenate([[0], (starts + lengths)[:-1]])
        scored_from = np.maximum(previous_end - starts, 0)
    scored_from[0] = 0
    return SlidingWindows(starts, lengths, scored_from)


def rank_share(n_items: int, rank: int, world: int) -> slice:
    """The contiguous share of `n_items` that rank `rank` of `world` handles."""
    return slice(n_items * rank // world, n_items * (rank + 1) // world)


def bf16_autocast(device: torch.device):
    """bf16 autocast on CUDA; on the CPU everything stays in float32."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def window_batch(
    val_tokens: torch.Tensor, windows: SlidingWindows, seq_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 inputs and targets [len(windows), seq_len] on `device`, zero beyond each window's length."""
    offsets = torch.arange(seq_len)
    starts = torch.as_tensor(windows.starts)[:, None]
    inside = offsets < torch.as_tensor(windows.lengths)[:, None]
    positions = torch.where(inside, starts + offsets, 0).to(val_tokens.device)
    inside = inside.to(val_tokens.device)
    inputs = torch.where(inside, val_tokens[positions].long(), 0)
    targets = torch.where(inside, val_tokens[positions + 1].long(), 0)
    return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)


ScoredCallback = Callable[[torch.Tensor, torch.Tensor], None]  # (target positions, per-token nll)


def score_windows(
    model,
    val_tokens: torch.Tensor,
    windows: SlidingWindows,
    luts: ByteLUTs,
    accumulator: BpbAccumulator,
    *,
    seq_len: int,
    batch_windows: int,
    device: torch.device,
    on_scored: ScoredCallback | None = None,
) -> None:
    """Score `windows` in batches (padded to seq_len) and add their scored targets to `accumulator`.

    The caller sets eval mode and inference mode. `on_scored`, when given, receives the target
    positions and float32 NLLs of every batch, for legality checks; nothing is computed for it otherwise.
    """
    offsets = torch.arange(seq_len, device=device)
    softcap = float(model.logit_softcap)
    for first in range(0, len(windows), batch_windows):
        batch = windows[first : first + batch_windows]
        inputs, targets = window_batch(val_tokens, batch, seq_len, device)
        scored = (offsets >= torch.as_tensor(batch.scored_from, device=device)[:, None]) & (
            offsets < torch.as_tensor(batch.lengths, device=device)[:, None]
        )
        with bf16_autocast(device):
            logits = model.forward_logits(inputs)
        # only the scored rows go through the loss: with stride 64 of 2048 that is 1/32 of them
        nll = softcap_cross_entropy(logits[scored], targets[scored], softcap)
        accumulator.add(nll, inputs[scored], targets[scored], luts)
        if on_scored is not None:
            starts = torch.as_tensor(batch.starts, device=device)[:, None]
            on_scored((starts + offsets + 1)[scored], nll)


@dataclass(frozen=True)
class EvalResult:
    val_loss: float
    val_bpb: float
    n_tokens: int
    n_bytes: int
    seconds: float


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def eval_sliding(
    model,
    val_tokens: torch.Tensor,
    luts: ByteLUTs,
    seq_len: int,
    stride: int,
    batch_windows: int = 32,
    records_compat: bool = False,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    on_scored: ScoredCallback | None = None,
) -> EvalResult:
    """val_loss / val_bpb of `model` over `val_tokens` (N+1 tokens) by sliding windows.

    Ranks take contiguous shares of the windows; the sums are all-reduced once at the end, so
    every rank returns the same result. The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device)
    synchronize(device)
    started = time.perf_counter()
    windows = sliding_windows(val_tokens.numel() - 1, seq_len, stride, records_compat)
    accumulator = BpbAccumulator(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            score_windows(
                model,
                val_tokens,
                windows[rank_share(len(windows), rank, world)],
                luts,
                accumulator,
                seq_len=seq_len,
                batch_windows=batch_windows,
                device=device,
                on_scored=on_scored,
            )
    finally:
        model.train(was_training)
    accumulator.all_reduce()
    synchronize(device)
    return EvalResult(
        val_loss=accumulator.val_loss,
        val_bpb=accumulator.val_bpb,
        n_tokens=accumulator.n_tokens,
        n_bytes=accumulator.n_bytes,
        seconds=time.perf_counter() - started,
    )
