"""val_loss and val_bpb: the one place in the project where bits per byte are computed.

The byte count of a scored target t with previous token p is the challenge's canonical rule:
    bytes(t | p) = base_bytes[t] + (has_leading_space[t] and not is_boundary[p])
val_loss = sum(NLL) / N_tokens and val_bpb = sum(NLL) / (ln 2 * N_bytes), with the three sums kept
in float64 and all-reduced (SUM) across ranks before dividing. Every target counts, BOS targets too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ByteLUTs:
    """Per-token-id lookup tables of the canonical byte rule (built by golf.data.tokenizer)."""

    base_bytes: np.ndarray  # int16/int32 [V]: UTF-8 bytes of the piece without its leading "▁"
    has_leading_space: np.ndarray  # bool [V]: the piece starts with "▁"
    is_boundary: np.ndarray  # bool [V]: control, unknown and unused ids

    def __post_init__(self):
        n = len(self.base_bytes)
        if len(self.has_leading_space) != n or len(self.is_boundary) != n:
            raise ValueError("ByteLUTs tables must have one entry per token id")

    @property
    def vocab_size(self) -> int:
        return len(self.base_bytes)

    def torch_tables(self, device: torch.device | str = "cpu"):
        """The three tables as tensors on `device` (int64, bool, bool)."""
        return (
            torch.as_tensor(self.base_bytes.astype(np.int64), device=device),
            torch.as_tensor(self.has_leading_space.astype(bool), device=device),
            torch.as_tensor(self.is_boundary.astype(bool), device=device),
        )


def token_bytes(prev_ids: torch.Tensor, target_ids: torch.Tensor, luts: ByteLUTs) -> torch.Tensor:
    """Canonical UTF-8 byte count of each target given its previous token (int64, same shape)."""
    base, space, boundary = luts.torch_tables(target_ids.device)
    prev = prev_ids.long()
    tgt = target_ids.long()
    return base[tgt] + (space[tgt] & ~boundary[prev]).long()


def bits_per_byte(nll_sum: float, n_bytes: float) -> float:
    """sum of NLL in nats over the canonical byte count, in bits per byte."""
    if n_bytes <= 0:
        raise ValueError("no bytes scored")
    return float(nll_sum) / (math.log(2.0) * float(n_bytes))


class BpbAccumulator:
    """Running float64 sums of NLL, scored tokens and bytes; all-reduced once before reading."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # nll, tokens, bytes
        self._reduced = False

    def add(self, nll: torch.Tensor, prev_ids: torch.Tensor, target_ids: torch.Tensor, luts: ByteLUTs) -> None:
        """Count per-token NLLs (nats) of targets `target_ids` whose previous tokens are `prev_ids`."""
        if nll.shape != target_ids.shape or prev_ids.shape != target_ids.shape:
            raise ValueError("nll, prev_ids and target_ids must have the same shape")
        self.sums[0] += nll.detach().double().sum().to(self.sums.device)
        self.sums[1] += float(target_ids.numel())
        self.sums[2] += token_bytes(prev_ids, target_ids, luts).sum().double().to(self.sums.device)

    def all_reduce(self) -> "BpbAccumulator":
        """SUM the three sums over the process group, if one is initialised (once)."""
        import torch.distributed as dist

        if not self._reduced and dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.sums, op=dist.ReduceOp.SUM)
        self._reduced = True
        return self

    @property
    def nll_sum(self) -> float:
        return float(self.sums[0])

    @property
    def n_tokens(self) -> int:
        return int(self.sums[1])

    @property
    def n_bytes(self) -> int:
        return int(self.sums[2])

    @property
    def val_loss(self) -> float:
        return self.nll_sum / max(self.n_tokens, 1)

    @property
    def val_bpb(self) -> float:
        return bits_per_byte(self.nll_sum, self.n_bytes)
