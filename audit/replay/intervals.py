"""Sets of validation positions as sorted, disjoint [start, end) runs, and the recorder's
first-event tables built on them.

Scores and updates touch the validation stream in contiguous chunks (a window's scored tail, a TTT
chunk, a batch of documents), so a table that says, per position, which event first touched it is
a short list of runs rather than one entry per position: the whole 62M-token validation set then
costs the recorder a few bytes per run instead of 4 bytes per position and table.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.zeros((0, 2), dtype=np.int64)


def runs_of(positions: np.ndarray) -> np.ndarray:
    """Positions (any order, repeats allowed) as sorted disjoint [start, end) runs, shape (k, 2)."""
    p = np.unique(np.asarray(positions, dtype=np.int64))
    if not p.size:
        return EMPTY
    breaks = np.flatnonzero(np.diff(p) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [p.size]])
    return np.stack([p[starts], p[ends - 1] + 1], axis=1)


def size(runs: np.ndarray) -> int:
    return int((runs[:, 1] - runs[:, 0]).sum()) if len(runs) else 0


def _covers(runs: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each point lies in one of the runs."""
    if not len(runs):
        return np.zeros(points.size, dtype=bool)
    i = np.searchsorted(runs[:, 0], points, side="right") - 1
    return (i >= 0) & (points < runs[np.maximum(i, 0), 1])


def _combine(a: np.ndarray, b: np.ndarray, keep) -> np.ndarray:
    """The runs of the positions where keep(in a, in b) holds: the elementary segments between all
    the boundaries of both, kept or not as a whole, then merged where they touch."""
    if not len(a) and not len(b):
        return EMPTY
    cuts = np.unique(np.concatenate([a.reshape(-1), b.reshape(-1)]))
    lo, hi = cuts[:-1], cuts[1:]
    kept = keep(_covers(a, lo), _covers(b, lo))
    lo, hi = lo[kept], hi[kept]
    if not lo.size:
        return EMPTY
    new_run = np.concatenate([[True], lo[1:] != hi[:-1]])
    starts = lo[new_run]
    ends = hi[np.concatenate([np.flatnonzero(new_run)[1:] - 1, [lo.size - 1]])]
    return np.stack([starts, ends], axis=1)


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _combine(a, b, lambda in_a, in_b: in_a | in_b)


def minus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _combine(a, b, lambda in_a, in_b: in_a & ~in_b)


class FirstEvents:
    """Per validation position, the number of the first event that touched it (first wins): the
    runs claimed by each event, and the union of all of them to tell a new position from a seen one."""

    def __init__(self) -> None:
        self.covered = EMPTY
        self._runs: list[np.ndarray] = []
        self._seqs: list[np.ndarray] = []

    def unseen(self, runs: np.ndarray) -> np.ndarray:
        """The part of `runs` no event has touched yet."""
        return minus(runs, self.covered)

    def mark(self, runs: np.ndarray, seq: int) -> None:
        """Event `seq` touched `runs`: the positions no earlier event touched are now its."""
        fresh = self.unseen(runs)
        if len(fresh):
            self._runs.append(fresh)
            self._seqs.append(np.full(len(fresh), seq, dtype=np.int64))
            self.covered = union(self.covered, fresh)

    @property
    def nbytes(self) -> int:
        return self.covered.nbytes + sum(r.nbytes + s.nbytes for r, s in zip(self._runs, self._seqs))

    def table(self) -> dict:
        """The picklable table: runs sorted by start, shape (k, 2), and the event number of each."""
        if not self._runs:
            return {"runs": EMPTY, "seqs": np.zeros(0, dtype=np.int64)}
        runs, seqs = np.concatenate(self._runs), np.concatenate(self._seqs)
        order = np.argsort(runs[:, 0], kind="stable")
        return {"runs": runs[order], "seqs": seqs[order]}


def table_from(events: list[tuple[int, np.ndarray]]) -> dict:
    """The first-event table of (seq, runs) events, taken in seq order."""
    first = FirstEvents()
    for seq, runs in sorted(events, key=lambda e: e[0]):
        first.mark(np.asarray(runs, dtype=np.int64).reshape(-1, 2), seq)
    return first.table()


def event_at(table: dict, position: int) -> int:
    """The first event number of `position` in a table, -1 when none touched it."""
    runs = table["runs"]
    i = int(np.searchsorted(runs[:, 0], position, side="right")) - 1 if len(runs) else -1
    return int(table["seqs"][i]) if i >= 0 and position < runs[i, 1] else -1


def spread(table: dict, values: np.ndarray, n: int, fill: float) -> np.ndarray:
    """A dense per-position array of n: values[seq] over each run of the table, `fill` elsewhere."""
    out = np.full(n, fill, dtype=np.asarray(values).dtype)
    runs = table["runs"]
    if len(runs):
        lengths = runs[:, 1] - runs[:, 0]
        positions = np.repeat(runs[:, 0] - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths) + np.arange(lengths.sum())
        out[positions] = np.repeat(np.asarray(values)[table["seqs"]], lengths)
    return out


class PositionSet:
    """The positions gathered between two events: kept as given while they are few, folded into runs
    once there are many (an evaluation that scores the whole validation set before any update would
    otherwise hold every position it read, several times over)."""

    FOLD_AT = 1 << 20

    def __init__(self) -> None:
        self._runs = EMPTY
        self._pending: list[np.ndarray] = []
        self._count = 0

    def add(self, positions: np.ndarray) -> None:
        if not positions.size:
            return
        self._pending.append(positions)
        self._count += positions.size
        if self._count > self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        self._runs = union(self._runs, runs_of(np.concatenate(self._pending)))
        self._pending, self._count = [], 0

    def runs(self) -> np.ndarray:
        if self._pending:
            self._fold()
        return self._runs

    def __bool__(self) -> bool:
        return bool(self._pending) or bool(len(self._runs))
