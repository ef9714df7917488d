"""The recorded ledgers of one replay, merged over ranks and cut into scoring passes.

A *site* is where a loss op ran in the submission (its stack of submission frames). Successive
scoring events of one site form a *pass* until an event goes back to (or before) the first
position of the current pass and scores again a position the pass already counted: a
re-evaluation starts a new pass, while overlapping windows, the chunks of a TTT loop and the
batches of a per-document TTT (each batch starting again near the front of the stream, on
documents not scored yet) stay in one. The k-th pass of a site on every rank is one pass of the run.
Sites that differ only in the lines of their outer frames (one loop scoring at two calls) also make
passes together.
For each pass the candidate reported sums are computed: the instances the run summed ("reduced",
when it summed only some of what it scored), every scored instance ("all"), or only each
position's first or last instance when a position was scored several times.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audit.replay import intervals
from golf.errors import GolfError


def load_ledgers(folder: Path) -> list[dict]:
    """The per-rank ledgers a replay wrote (rank order); GolfError when none were written."""
    paths = sorted(Path(folder).glob("ledger-rank*.pkl"), key=lambda p: int(p.stem.split("rank")[1]))
    if not paths:
        raise GolfError("the replay wrote no ledger (the submission did not reach the end of its start-up)")
    ledgers = []
    for p in paths:
        with open(p, "rb") as f:
            ledgers.append(pickle.load(f))
    return ledgers


@dataclass
class Pass:
    """One scoring pass: its site, index among the site's passes, and the events of every rank."""

    site: tuple
    index: int
    events: list = field(default_factory=list)  # (rank, event dict)

    @property
    def first_event(self) -> dict:
        return min((e for _, e in self.events), key=lambda e: e["t"])

    @property
    def start_time(self) -> float:
        return min(e["t"] for _, e in self.events)

    @property
    def end_time(self) -> float:
        return max(e["t"] for _, e in self.events)

    def instances(self) -> tuple[np.ndarray, ...]:
        """positions, losses, times, event numbers (index in pass order) and whether the run summed
        it, of every scored instance."""
        ordered = [e for _, e in sorted(self.events, key=lambda re: re[1]["t"])]
        pos = [e["positions"] for e in ordered]
        loss = [e["losses"] for e in ordered]
        times = [np.full(e["positions"].size, e["t"]) for e in ordered]
        idx = [np.full(e["positions"].size, i) for i, e in enumerate(ordered)]
        reduced = [e.get("reduced", np.ones(e["positions"].size, dtype=bool)) for e in ordered]
        return tuple(np.concatenate(x) for x in (pos, loss, times, idx, reduced))


def site_key(site: tuple) -> tuple:
    return tuple((f, line) for f, line, _ in site)


def split_passes(ledgers: list[dict]) -> list[Pass]:
    """All passes of the run, ordered by their start time: those of each site, and those of each
    set of sibling sites (see sibling_key) that span more than one site."""
    passes = list(_split(ledgers, site_key).values())
    passes += [p for p in _split(ledgers, sibling_key).values() if len({site_key(e["site"]) for _, e in p.events}) > 1]
    return sorted(passes, key=lambda p: p.start_time)


def sibling_key(site: tuple) -> tuple:
    """A site without the lines of its outer frames: the same loss line reached from several calls
    in the same functions (an evaluation loop that scores most chunks in one call and the last
    ones in another) is one evaluation."""
    return tuple((f, fn) for f, _, fn in site[:-1]) + site_key(site[-1:])


def _split(ledgers: list[dict], key_of) -> dict[tuple, Pass]:
    merged: dict[tuple, Pass] = {}
    for ledger in ledgers:
        current: dict[tuple, tuple[int, int, np.ndarray]] = {}  # key -> (pass index, first position, counted)
        for event in sorted(ledger["scores"], key=lambda e: e["seq"]):
            key = key_of(event["site"])
            lo = int(event["positions"].min())
            counted = _counted_positions(event)
            index, first, seen = current.get(key, (-1, None, None))
            if first is None or (lo <= first and seen[counted].any()):
                index, first, seen = index + 1, lo, np.zeros(ledger["stream_len"], dtype=bool)
            first = min(first, lo)
            seen[counted] = True
            current[key] = (index, first, seen)
            merged.setdefault((key, index), Pass(site=event["site"], index=index)).events.append((ledger["rank"], event))
    return merged


def _counted_positions(event: dict) -> np.ndarray:
    """The positions of a scoring event that the run summed (all of them when it summed none)."""
    reduced = event.get("reduced")
    if reduced is not None and reduced.any():
        return event["positions"][reduced]
    return event["positions"]


@dataclass
class Candidate:
    """One way a pass could make the reported sum."""

    pass_: Pass
    variant: str  # reduced | all | first | last
    positions: np.ndarray
    losses: np.ndarray
    times: np.ndarray
    event_index: np.ndarray
    nll: float
    tokens: int
    n_bytes: float

    @property
    def val_loss(self) -> float:
        return self.nll / self.tokens if self.tokens else math.nan

    @property
    def val_bpb(self) -> float:
        return self.nll / (math.log(2.0) * self.n_bytes) if self.n_bytes else math.nan


VARIANT_ORDER = ("reduced", "all", "first", "last")


def candidates(p: Pass, byte_counts: np.ndarray) -> list[Candidate]:
    """The readings of a pass: the instances the run summed ('reduced', when it summed only some),
    every instance ('all'), and each position's first or last instance when some was scored twice."""
    pos, loss, times, idx, reduced = p.instances()
    out = [_candidate(p, "all", pos, loss, times, idx, byte_counts)]
    if reduced.any() and not reduced.all():
        out.insert(0, _candidate(p, "reduced", pos[reduced], loss[reduced], times[reduced], idx[reduced], byte_counts))
    uniq, first_at = np.unique(pos, return_index=True)
    if uniq.size != pos.size:
        out.append(_candidate(p, "first", pos[first_at], loss[first_at], times[first_at], idx[first_at], byte_counts))
        rev = pos.size - 1 - np.unique(pos[::-1], return_index=True)[1]
        out.append(_candidate(p, "last", pos[rev], loss[rev], times[rev], idx[rev], byte_counts))
    return out


def _candidate(p, variant, pos, loss, times, idx, byte_counts) -> Candidate:
    return Candidate(p, variant, pos, loss, times, idx, nll=float(loss.sum()), tokens=int(pos.size),
                     n_bytes=float(byte_counts[pos].sum()))


def canonical_byte_counts(stream: np.ndarray, luts) -> np.ndarray:
    """bytes(t | p) of every position of the stream (position 0, never a target, counts 0)."""
    base = np.asarray(luts.base_bytes, dtype=np.int64)
    space = np.asarray(luts.has_leading_space, dtype=bool)
    boundary = np.asarray(luts.is_boundary, dtype=bool)
    out = np.zeros(stream.size, dtype=np.float64)
    tgt, prev = stream[1:], stream[:-1]
    out[1:] = base[tgt] + (space[tgt] & ~boundary[prev])
    return out


def _seq_times(ledger: dict) -> np.ndarray:
    """event number -> wall time of one rank's scores and mutations (inf where none)."""
    events = [(e["seq"], e["t"]) for e in ledger["scores"]] + [(m["seq"], m["t"]) for m in ledger["mutations"]]
    table = np.full(max((q for q, _ in events), default=0) + 1, np.inf)
    for q, t in events:
        table[q] = t
    return table


def first_times(ledgers: list[dict], field_name: str) -> np.ndarray:
    """Per position, the earliest wall time over ranks of the event a first-event table names."""
    best = np.full(ledgers[0]["stream_len"], np.inf)
    for ledger in ledgers:
        np.minimum(best, intervals.spread(ledger[field_name], _seq_times(ledger), best.size, np.inf), out=best)
    return best


def mutation_at(ledgers: list[dict], position: int, field_name: str) -> dict | None:
    """The mutation that first used `position` (earliest over ranks)."""
    found = []
    for ledger in ledgers:
        seq = intervals.event_at(ledger[field_name], position)
        if seq >= 0:
            found.extend(m for m in ledger["mutations"] if m["seq"] == seq)
    return min(found, key=lambda m: m["t"]) if found else None


def discarded_updates(ledgers: list[dict], counted: Pass | None) -> set[tuple[int, int]]:
    """(rank, seq) of the validation-fed optimizer steps whose updates reached nothing: no evaluation
    (a score without autograd, or one of the counted pass), no write and no other optimizer's step
    ever read a parameter they changed (a compile warm-up on a throw-away adapter). An optimizer's
    own training loop (a training loss reading its parameters, followed by its next step) does not
    make it reach anything."""
    counted_events = {id(e) for _, e in counted.events} if counted is not None else set()
    out: set[tuple[int, int]] = set()
    for led in ledgers:
        steps = [m for m in led["mutations"] if m.get("optimizer")]
        if not steps:
            continue
        events = sorted([("score", e) for e in led["scores"]] + [("update", m) for m in led["mutations"]],
                        key=lambda ke: ke[1]["seq"])
        reached: set[int] = set()
        for i, (kind, e) in enumerate(events):
            reads = set(e.get("reads", ()))
            if not reads:
                continue
            if kind == "score" and (not e["grad"] or id(e) in counted_events):
                reached |= reads
            elif kind == "score":  # a training loss: it reaches whichever optimizer steps next
                nxt = next((m for k, m in events[i + 1:] if k == "update" and m["kind"] == "optimizer"), None)
                if nxt is not None:
                    reached |= reads - {nxt.get("optimizer")}
            elif e["kind"] != "optimizer":
                reached |= reads
            else:
                reached |= reads - {e.get("optimizer")}
        out |= {(led["rank"], m["seq"]) for m in steps if m["optimizer"] not in reached}
    return out


def without_updates(ledgers: list[dict], dropped: set[tuple[int, int]]) -> list[dict]:
    """The ledgers with the first-update tables rebuilt from every mutation but the `dropped` ones."""
    out = []
    for led in ledgers:
        if not any(rank == led["rank"] for rank, _ in dropped):
            out.append(led)
            continue
        kept = [m for m in led["mutations"] if (led["rank"], m["seq"]) not in dropped]
        first_any = intervals.table_from([(m["seq"], m.get("fed_ranges", intervals.EMPTY)) for m in kept])
        first_grad = intervals.table_from([(m["seq"], m.get("fed_ranges", intervals.EMPTY)) for m in kept if m["grad_fed"]])
        out.append({**led, "first_update_seq": first_any, "first_grad_update_seq": first_grad})
    return out
