"""The interval ledger: run arithmetic and first-event tables against dense per-position arrays."""

import numpy as np
import torch

from audit.replay import intervals
from audit.replay.intervals import FirstEvents, PositionSet, event_at, minus, runs_of, spread, table_from, union
from audit.replay.tracker import Tracker

N = 500


def _dense(runs: np.ndarray) -> np.ndarray:
    out = np.zeros(N, dtype=bool)
    for a, b in runs:
        out[a:b] = True
    return out


def _random_positions(rng) -> np.ndarray:
    """Some chunks and some scattered positions, with repeats."""
    chunks = [np.arange(a, min(N, a + rng.integers(1, 60))) for a in rng.integers(0, N, rng.integers(0, 5))]
    return np.concatenate(chunks + [rng.integers(0, N, rng.integers(0, 20))]).astype(np.int64)


def test_runs_of_gives_sorted_disjoint_runs_of_exactly_the_positions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = _random_positions(rng)
        runs = runs_of(p)
        assert np.array_equal(np.flatnonzero(_dense(runs)), np.unique(p))
        assert np.all(runs[1:, 0] > runs[:-1, 1])  # disjoint and not touching: merged
        assert intervals.size(runs) == np.unique(p).size


def test_union_and_minus_equal_the_dense_set_operations():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b = runs_of(_random_positions(rng)), runs_of(_random_positions(rng))
        for got, want in ((union(a, b), _dense(a) | _dense(b)), (minus(a, b), _dense(a) & ~_dense(b))):
            assert np.array_equal(_dense(got), want)
            assert np.all(got[1:, 0] > got[:-1, 1])


def test_first_events_equal_a_dense_first_wins_table():
    rng = np.random.default_rng(2)
    for _ in range(50):
        dense = np.full(N, -1)
        first = FirstEvents()
        for seq in range(1, rng.integers(2, 30)):
            p = _random_positions(rng)
            unseen_want = np.unique(p[dense[p] < 0])
            assert np.array_equal(np.flatnonzero(_dense(first.unseen(runs_of(p)))), unseen_want)
            dense[unseen_want] = seq
            first.mark(runs_of(p), seq)
        table = first.table()
        assert np.array_equal(spread(table, np.arange(100), N, -1), dense)
        for q in rng.integers(0, N, 30).tolist():
            assert event_at(table, q) == dense[q]


def test_table_from_replays_events_in_seq_order():
    later, earlier = np.array([[0, 10]]), np.array([[5, 20]])
    table = table_from([(7, later), (3, earlier)])
    assert [event_at(table, q) for q in (0, 4, 5, 19, 20)] == [7, 7, 3, 3, -1]


def test_position_set_folds_into_runs_without_losing_a_position(monkeypatch):
    monkeypatch.setattr(PositionSet, "FOLD_AT", 50)
    rng = np.random.default_rng(3)
    gathered, everything = PositionSet(), []
    assert not gathered
    for _ in range(40):
        p = _random_positions(rng)
        gathered.add(p)
        everything.append(p)
    assert gathered
    assert np.array_equal(np.flatnonzero(_dense(gathered.runs())), np.unique(np.concatenate(everything)))


def test_a_sampled_content_index_finds_stretches_that_hold_a_sampled_position(monkeypatch):
    """Above FULL_INDEX_UP_TO tokens the index keeps every INDEX_STRIDE-th 4-gram; a tensor copied
    from anywhere in the stream and at least INDEX_STRIDE + 3 tokens long is still found."""
    monkeypatch.setattr(Tracker, "FULL_INDEX_UP_TO", 1000)
    rng = np.random.default_rng(4)
    stream = rng.integers(0, 1024, 20_000).astype(np.int32)
    tracker = Tracker(stream)
    for start in rng.integers(1, 20_000 - 200, 25).tolist():
        copy = torch.from_numpy(stream[start:start + Tracker.INDEX_STRIDE + 3].astype(np.int64))
        assert tracker._find_in_stream(copy.numpy()) == start
    assert tracker._content_index[2] == Tracker.INDEX_STRIDE
    # the stream (16-bit) and the sampled index stay far below the 4 bytes per position of an int32 table
    finished = tracker.finish()
    assert finished.bytes_per_position < 2.5
