"""Sliding-window evaluation: exact-once coverage, the records' tail double count, the byte rule."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from eval_tiny_lm import fake_luts, patterned_tokens, tiny_model
from golf.errors import GolfError
from golf.eval.bpb import ByteLUTs
from golf.eval.sliding import eval_sliding, sliding_windows


def scored_counts(windows, n_targets):
    counts = np.zeros(n_targets + 1, dtype=np.int64)
    for start, length, scored_from in windows:
        counts[start + scored_from + 1 : start + length + 1] += 1
    return counts


@pytest.mark.parametrize(
    "n_targets, seq_len, stride",
    [(8192, 128, 32), (1000, 128, 32), (100, 128, 32), (8192, 128, 128), (333, 16, 5), (2049, 64, 1)],
)
def test_exact_mode_scores_every_target_once_with_full_context(n_targets, seq_len, stride):
    windows = sliding_windows(n_targets, seq_len, stride)
    counts = scored_counts(windows, n_targets)
    assert counts[0] == 0 and (counts[1:] == 1).all()
    assert windows.n_scored == n_targets
    assert windows.starts[-1] + windows.lengths[-1] == n_targets  # the last window reaches N
    assert (windows.starts == np.arange(len(windows)) * stride).all()
    # after the first window every scored target sees at least seq_len - stride tokens of context
    assert (windows.scored_from[1:] >= seq_len - stride).all()


def test_smoke_shape_exact_and_records_compat():
    exact = sliding_windows(8192, 128, 32)
    compat = sliding_windows(8192, 128, 32, records_compat=True)
    assert len(exact) == 253 and len(compat) == 256  # reference.md 8.4: 256 windows in the records
    counts = scored_counts(compat, 8192)
    # windows 252..255 all score the final 32 targets: 3 extra counts each
    assert (counts[1:8161] == 1).all() and (counts[8161:] == 4).all()
    assert compat.n_scored - exact.n_scored == 96


def test_record_shape_tail_double_count():
    # reference.md 5.1: 62,021,632 targets, context 2048, stride 64 -> 969,088 windows in the records
    exact = sliding_windows(62_021_632, 2048, 64)
    compat = sliding_windows(62_021_632, 2048, 64, records_compat=True)
    assert len(compat) == 969_088 and len(exact) == 969_057
    assert exact.n_scored == 62_021_632
    assert compat.n_scored - exact.n_scored == 31 * 64  # the last 64 targets counted 32 times


class BigramTable(torch.nn.Module):
    """Logits depend on the previous token only: a model whose scores can be computed by hand."""

    logit_softcap = 30.0

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def forward_logits(self, input_ids):
        return self.table[input_ids]


def test_bpb_of_a_five_token_sequence_by_hand():
    # vocab: 0 = BOS (boundary), 1 = "▁a" (1 byte + space), 2 = "bc" (2 bytes), 3 = "▁" (0 + space)
    luts = ByteLUTs(
        base_bytes=np.array([0, 1, 2, 0], dtype=np.int16),
        has_leading_space=np.array([False, True, False, True]),
        is_boundary=np.array([True, False, False, False]),
    )
    table = [[0.0, 2.0, 0.0, -1.0], [1.0, 0.0, 3.0, 0.0], [0.0, 1.0, 0.0, 2.0], [0.5, 0.0, 0.0, 0.0]]
    tokens = torch.tensor([0, 1, 2, 3, 1])
    # targets 1|0, 2|1, 3|2, 1|3: bytes 1 (space after BOS not counted) + 2 + (0+1) + (1+1) = 6
    nll = 0.0
    for prev, target in zip(tokens[:-1].tolist(), tokens[1:].tolist()):
        z = [30 * math.tanh(v / 30) for v in table[prev]]
        nll += math.log(sum(math.exp(v) for v in z)) - z[target]
    for seq_len, stride in [(2, 1), (4, 2), (8, 8)]:
        result = eval_sliding(BigramTable(table), tokens, luts, seq_len, stride)
        assert result.n_tokens == 4 and result.n_bytes == 6
        assert result.val_loss == pytest.approx(nll / 4, abs=1e-6)
        assert result.val_bpb == pytest.approx(nll / (math.log(2) * 6), abs=1e-6)


def test_eval_loop_scores_each_position_once_and_compat_difference():
    tokens, luts, model = patterned_tokens(8193), fake_luts(), tiny_model()
    seen = []
    exact = eval_sliding(model, tokens, luts, 128, 32, batch_windows=32,
                         on_scored=lambda positions, nll: seen.append(positions))
    positions = torch.cat(seen).numpy()
    assert np.array_equal(np.sort(positions), np.arange(1, 8193))
    assert exact.n_tokens == 8192
    compat = eval_sliding(model, tokens, luts, 128, 32, records_compat=True)
    assert compat.n_tokens - exact.n_tokens == 96
    print(f"\nsmoke shape: exact bpb {exact.val_bpb:.6f} ({exact.n_tokens} targets), records_compat "
          f"{compat.val_bpb:.6f} ({compat.n_tokens}), difference {compat.val_bpb - exact.val_bpb:+.2e}")
    assert compat.val_bpb != exact.val_bpb


def test_rank_shares_add_up_to_the_whole():
    tokens, luts, model = patterned_tokens(3001), fake_luts(), tiny_model()
    whole = eval_sliding(model, tokens, luts, 128, 32, batch_windows=8)
    # without a process group nothing is all-reduced: each result is that rank's share
    parts = [eval_sliding(model, tokens, luts, 128, 32, batch_windows=8, rank=r, world=3) for r in range(3)]
    assert sum(p.n_tokens for p in parts) == whole.n_tokens == 3000
    assert sum(p.n_bytes for p in parts) == whole.n_bytes
    assert sum(p.val_loss * p.n_tokens for p in parts) == pytest.approx(whole.val_loss * whole.n_tokens, rel=1e-9)


def test_batching_does_not_change_the_score():
    tokens, luts, model = patterned_tokens(2001), fake_luts(), tiny_model()
    a = eval_sliding(model, tokens, luts, 128, 32, batch_windows=1)
    b = eval_sliding(model, tokens, luts, 128, 32, batch_windows=64)
    assert a.val_bpb == pytest.approx(b.val_bpb, rel=1e-6)


def test_uint16_tokens_and_mode_restored():
    tokens, luts, model = patterned_tokens(1001), fake_luts(), tiny_model()
    model.train()
    a = eval_sliding(model, tokens, luts, 64, 16)
    b = eval_sliding(model, torch.from_numpy(tokens.numpy().astype(np.uint16)), luts, 64, 16)
    assert dataclasses.replace(b, seconds=a.seconds) == a
    assert model.training


def test_bad_shapes_are_rejected():
    with pytest.raises(GolfError, match="stride 128"):
        sliding_windows(100, 64, 128)
    with pytest.raises(GolfError):
        sliding_windows(0, 64, 32)
