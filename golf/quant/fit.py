"""Size-targeted pruning: make code + compressed model bytes fit the artifact budget (reference.md 4.5-4.6).

Seed-to-seed blob sizes vary by ~0.5 MB at fixed settings, so a fixed pruning fraction either
overflows or wastes bytes. After GPTQ, if the artifact is over budget, the int5 ("gptq") entries
with |q| == 1 are zeroed, cheapest first: zeroing q = +-1 moves the dequantised weight by exactly its
row scale, so the added squared reconstruction error is Δ_row² = scale_row². The count to zero is
binary-searched so that code + blob <= budget (the 03-25 merged record's size target, in decimal
bytes). If zeroing every such entry still does not fit, BudgetExceeded names both sizes.

Search codec: compressing the record-size container with the real codec (zstd-22 and lzma-9, the
smaller kept) takes about a minute on CPU, so the binary search measures a fast proxy instead
(zstd level 3, well under a second) and converts the byte target into proxy bytes with the
real/proxy ratio measured at the last point where both are known. The proxy's relative savings
from zeroing are not exactly the real codec's (on a 14 KB toy container zstd-3 saves ~2 % where
lzma-9 saves ~5 %), so the count found is an estimate: the real codec checks it, and when it still
overflows the ratio is re-measured there and the search continues above that count. Every real
compression is therefore a check of a candidate answer (typically 2-3 in all, the first being the
unpruned size that the pipeline needs anyway), never a search step. The price is that the count
may exceed the true minimum when the proxy under-reports the savings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
import zstandard

from golf.errors import BudgetExceeded
from golf.quant.artifact import ArtifactSize, compress, serialize_state
from golf.quant.pack import QuantizedState

PROXY_ZSTD_LEVEL = 3


def proxy_compress(data: bytes) -> bytes:
    """The search's stand-in for `compress`: same family of coder, ~100x faster."""
    return zstandard.ZstdCompressor(level=PROXY_ZSTD_LEVEL).compress(data)


@dataclass(frozen=True)
class PruneCandidates:
    """Every |q| == 1 entry of the int5 matrices, cheapest (smallest scale_row²) first."""

    names: tuple[str, ...]
    entry: torch.Tensor  # index into names, per candidate
    flat_index: torch.Tensor  # position in that entry's flattened q
    cost: torch.Tensor  # scale_row² (float64), non-decreasing

    def __len__(self) -> int:
        return len(self.cost)


def prune_candidates(qstate: QuantizedState) -> PruneCandidates:
    names, entry, flat, cost = [], [], [], []
    for name, e in qstate.entries.items():
        if e.kind != "gptq":
            continue
        q = e.q.reshape(e.q.shape[0], -1)
        rows, cols = torch.nonzero(q.abs() == 1, as_tuple=True)
        entry.append(torch.full_like(rows, len(names)))
        flat.append(rows * q.shape[1] + cols)
        cost.append(e.scale.double()[rows] ** 2)
        names.append(name)
    if not names:
        empty = torch.zeros(0, dtype=torch.int64)
        return PruneCandidates((), empty, empty, empty.double())
    cost_all = torch.cat(cost)
    order = torch.sort(cost_all, stable=True).indices  # ties keep matrix and row-major order
    return PruneCandidates(tuple(names), torch.cat(entry)[order], torch.cat(flat)[order], cost_all[order])


def zero_cheapest(qstate: QuantizedState, candidates: PruneCandidates, count: int) -> QuantizedState:
    """A copy of `qstate` with the first `count` candidates set to 0 (the input is left unchanged)."""
    out = QuantizedState(dict(qstate.entries))
    entry, flat = candidates.entry[:count], candidates.flat_index[:count]
    for i, name in enumerate(candidates.names):
        chosen = flat[entry == i]
        if len(chosen):
            e = qstate.entries[name]
            q = e.q.clone()
            q.view(-1)[chosen] = 0
            out.entries[name] = replace(e, q=q)
    return out


@dataclass(frozen=True)
class FitResult:
    qstate: QuantizedState
    blob: bytes  # the compressed model bytes of qstate (real codec)
    size: ArtifactSize
    n_zeroed: int
    n_candidates: int


def fit_to_budget(qstate: QuantizedState, code_bytes: int, budget: int,
                  compress_fn: Callable[[bytes], bytes] = compress,
                  proxy_fn: Callable[[bytes], bytes] = proxy_compress) -> FitResult:
    """Zero the fewest cheapest |q| == 1 int5 entries so that code_bytes + len(blob) <= budget.

    `compress_fn` is the real codec (its output is what counts and what is returned); `proxy_fn`
    only steers the search (see the module docstring). Raises BudgetExceeded naming the artifact
    and budget sizes when even zeroing every candidate does not fit.
    """
    def real(count: int) -> tuple[QuantizedState, bytes, ArtifactSize]:
        state = zero_cheapest(qstate, candidates, count) if count else qstate
        blob = compress_fn(serialize_state(state))
        return state, blob, ArtifactSize(code_bytes, len(blob), budget)

    def proxy_bytes(count: int) -> int:
        return len(proxy_fn(serialize_state(zero_cheapest(qstate, candidates, count))))

    candidates = prune_candidates(qstate)
    state, blob, size = real(0)
    if size.total <= budget:
        return FitResult(state, blob, size, 0, len(candidates))
    model_target = budget - code_bytes
    lo, hi = 1, len(candidates)
    checked, checked_proxy = 0, proxy_bytes(0)
    while lo <= hi and model_target > 0:
        proxy_target = model_target * checked_proxy / size.model_bytes
        # smallest count in [lo, hi] whose proxy size meets the target (hi if none does)
        a, b = lo, hi
        while a < b:
            mid = (a + b) // 2
            if proxy_bytes(mid) <= proxy_target:
                b = mid
            else:
                a = mid + 1
        checked = a
        state, blob, size = real(checked)
        if size.total <= budget:
            return FitResult(state, blob, size, checked, len(candidates))
        checked_proxy = proxy_bytes(checked)
        lo = checked + 1
    if checked != len(candidates):  # the search never measured the all-zeroed state: do it now
        state, blob, size = real(len(candidates))
        if size.total <= budget:
            return FitResult(state, blob, size, len(candidates), len(candidates))
    raise BudgetExceeded(
        f"{size.describe()} even with all {len(candidates):,} |q|=1 int5 entries zeroed: "
        f"over by {-size.headroom:,} bytes")
