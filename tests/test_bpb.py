"""The bpb metric against hand computations."""

import math

import numpy as np
import pytest
import torch

from golf.eval.bpb import BpbAccumulator, ByteLUTs, bits_per_byte, token_bytes


def _luts():
    # ids: 0 pad, 1 bos (boundary), 2 "▁the" (3 bytes + space), 3 "<0xC3>" byte piece, 4 "ab"
    return ByteLUTs(
        base_bytes=np.array([0, 0, 3, 1, 2]),
        has_leading_space=np.array([False, False, True, False, False]),
        is_boundary=np.array([True, True, False, False, False]),
    )


def test_token_bytes_leading_space_counts_unless_after_boundary():
    prev = torch.tensor([1, 2, 4, 3])
    tgt = torch.tensor([2, 2, 3, 4])
    assert token_bytes(prev, tgt, _luts()).tolist() == [3, 4, 1, 2]


def test_accumulator_matches_hand_computation():
    acc = BpbAccumulator()
    nll = torch.tensor([1.0, 2.0, 0.5, 0.25, 3.0])
    prev = torch.tensor([1, 2, 4, 3, 4])
    tgt = torch.tensor([2, 2, 3, 4, 1])  # the BOS target costs loss but has 0 bytes
    acc.add(nll, prev, tgt, _luts())
    assert acc.n_tokens == 5 and acc.n_bytes == 3 + 4 + 1 + 2 + 0
    assert acc.val_loss == pytest.approx(6.75 / 5)
    assert acc.val_bpb == pytest.approx(6.75 / (math.log(2) * 10))
    assert bits_per_byte(6.75, 10) == acc.val_bpb
