"""Calibration batches for the GPTQ Hessians, read from the training shards only (reference.md 4.2).

A fresh sequential stream over the sorted train shards, starting at token 0 (the first tokens
training saw): n_seqs sequences of seq_len + 1 tokens, batch size 1, as (inputs, targets).
Reading training data after the loop counts against the training budget (rules.md BUD-T), so the
caller must run `collect_hessians` over these batches inside the training wallclock and log the
time it took (the training loop reserves `gptq_reserve_seconds` for it).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch

from golf.data.shards import TokenStream
from golf.errors import GolfError


def calibration_batches(
    train_pattern: str | os.PathLike,
    n_seqs: int,
    seq_len: int,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """n_seqs pairs (x, y) of int64 tensors shaped (1, seq_len), y = x shifted by one.

    Arguments and shards are checked here, before the first batch is drawn.
    """
    if n_seqs <= 0 or seq_len <= 0:
        raise GolfError(f"calibration needs positive n_seqs and seq_len, got {n_seqs} and {seq_len}")
    if "_val_" in os.path.basename(str(train_pattern)):
        raise GolfError(f"calibration must read training shards only, got {train_pattern}")
    stream = TokenStream(train_pattern)

    def batches():
        for _ in range(n_seqs):
            span = torch.from_numpy(stream.take(seq_len + 1).astype(np.int64)).to(device)
            yield span[:-1].view(1, seq_len), span[1:].view(1, seq_len)

    return batches()
