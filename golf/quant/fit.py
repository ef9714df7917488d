"""Size-targeted pruning: make code + compressed model bytes fit the artifact budget (reference.md 4.5-4.6).

Seed-to-seed blob sizes vary by ~0.5 MB at fixed settings, so a fixed pruning fraction either
overflows or wastes bytes. After GPTQ, if the artifact is over budget, the int5 ("gptq") entries
with |q| == 1 are zeroed, cheapest first: zeroing q = +-1 moves the dequantised weight by exactly its
row scale, so the added squared reconstruction error is Δ_row² = scale_row². The count to zero is
binary-searched so that code + blob <= budget (the 03-25 merged record's size target, in decimal
bytes). If zeroing every such entry still does not fit, BudgetExceeded names both sizes.

Search codec: compressing the record-size container with the real codec (zstd-22 and lzma-9, the
smaller kept) takes about a minute on CPU, so every binary-search step measures a fast proxy
instead (zstd level 3, well under a second) and only candidate answers go through the real codec.
The proxy's savings from zeroing are not the real codec's (lzma-9 saves 2-3x more bytes per zeroed
entry than zstd-3 here), so proxy bytes are mapped to real bytes from real measurements: before
any count is known to fit, by the real/proxy ratio at the last overflowing count (an estimate that
overshoots, i.e. finds a fitting count quickly); afterwards by linear interpolation between the
largest overflowing and the smallest fitting count, which narrows the bracket towards the minimum.
At most `max_real_checks` real compressions are spent once a fit is known (the first being the
unpruned size the pipeline needs anyway), so the count may exceed the true minimum slightly.
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
                  proxy_fn: Callable[[bytes], bytes] = proxy_compress,
                  max_real_checks: int = 4) -> FitResult:
    """Zero the fewest cheapest |q| == 1 int5 entries so that code_bytes + len(blob) <= budget.

    `compress_fn` is the real codec (its output is what counts and what is returned); `proxy_fn`
    only steers the search (see the module docstring). Once a fitting count is known, the search
    stops after `max_real_checks` real compressions and returns the smallest fitting count found.
    Raises BudgetExceeded naming the artifact and budget sizes when even zeroing every candidate
    does not fit.
    """
    candidates = prune_candidates(qstate)
    proxy_cache: dict[int, int] = {}

    def proxy_bytes(count: int) -> int:
        if count not in proxy_cache:
            proxy_cache[count] = len(proxy_fn(serialize_state(zero_cheapest(qstate, candidates, count))))
        return proxy_cache[count]

    def real(count: int) -> FitResult:
        state = zero_cheapest(qstate, candidates, count) if count else qstate
        blob = compress_fn(serialize_state(state))
        return FitResult(state, blob, ArtifactSize(code_bytes, len(blob), budget), count, len(candidates))

    fail = real(0)  # the largest count known to overflow
    if fail.size.total <= budget:
        return fail
    fit: FitResult | None = None  # the smallest count known to fit
    target = budget - code_bytes
    checks = 1
    while fit is None or checks < max_real_checks:
        lo, hi = fail.n_zeroed + 1, (fit.n_zeroed - 1 if fit else len(candidates))
        if lo > hi:
            break
        p_fail = proxy_bytes(fail.n_zeroed)
        if fit is None:  # real/proxy ratio at the last overflow
            p_target = target * p_fail / fail.size.model_bytes
        else:  # interpolate real bytes linearly in proxy bytes between the bracketing counts
            p_fit = proxy_bytes(fit.n_zeroed)
            p_target = p_fail + (target - fail.size.model_bytes) * (p_fit - p_fail) / (
                fit.size.model_bytes - fail.size.model_bytes)
        while lo < hi:  # smallest count in [lo, hi] whose proxy size meets p_target (hi if none)
            mid = (lo + hi) // 2
            if proxy_bytes(mid) <= p_target:
                hi = mid
            else:
                lo = mid + 1
        checked = real(lo)
        checks += 1
        if checked.size.total <= budget:
            fit = checked
        else:
            fail = checked
    if fit is None:
        raise BudgetExceeded(
            f"{fail.size.describe()} even with all {len(candidates):,} |q|=1 int5 entries zeroed: "
            f"over by {-fail.size.headroom:,} bytes")
    return fit
