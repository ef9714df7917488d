"""Calibration batches come from the training shards, in stream order from token 0."""

import numpy as np
import pytest
import torch

from golf.data.shards import write_shard
from golf.errors import GolfError
from golf.quant.calibration import calibration_batches


def test_batches_are_the_first_training_tokens_across_a_shard_boundary(tmp_path):
    first = np.arange(0, 50, dtype=np.uint16)
    second = np.arange(50, 120, dtype=np.uint16)
    write_shard(tmp_path / "fineweb_train_000001.bin", second)
    write_shard(tmp_path / "fineweb_train_000000.bin", first)  # sorted order, not write order
    write_shard(tmp_path / "fineweb_val_000000.bin", np.full(100, 7, dtype=np.uint16))
    batches = list(calibration_batches(tmp_path / "fineweb_train_*.bin", n_seqs=4, seq_len=16))
    assert len(batches) == 4
    for k, (x, y) in enumerate(batches):
        start = k * 17  # each sequence consumes seq_len + 1 tokens
        assert x.shape == y.shape == (1, 16) and x.dtype == torch.int64
        assert x.flatten().tolist() == list(range(start, start + 16))
        assert y.flatten().tolist() == list(range(start + 1, start + 17))


def test_bad_requests_fail_before_any_batch(tmp_path):
    write_shard(tmp_path / "fineweb_val_000000.bin", np.zeros(100, dtype=np.uint16))
    with pytest.raises(GolfError, match="training shards only"):
        calibration_batches(tmp_path / "fineweb_val_*.bin", 2, 8)
    with pytest.raises(GolfError, match="no shards"):
        calibration_batches(tmp_path / "fineweb_train_*.bin", 2, 8)
    with pytest.raises(GolfError, match="positive"):
        calibration_batches(tmp_path / "fineweb_train_*.bin", 0, 8)
