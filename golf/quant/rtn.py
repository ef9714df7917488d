"""Symmetric per-row integer quantisation: scales, round-to-nearest and dequantisation.

Every quantised matrix is stored as integers q in [-q_max, q_max] (held in int8) and one fp16
scale per row, W ~= q * scale[:, None]. q_max = 2^(bits-1) - 1, so int5 gives [-15, 15] and int8
[-127, 127] (reference.md section 0: the exported int5 grid is symmetric, 31 levels).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Row-clip percentiles searched for int5 block matrices (reference.md 4.3).
CLIP_PERCENTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)
# Row-clip percentile of the (int8) embedding tables (reference.md 4.4).
EMBED_CLIP_PERCENTILE = 0.9999984


def qmax_for_bits(bits: int) -> int:
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8] (values are stored in int8), got {bits}")
    return 2 ** (bits - 1) - 1


def row_scales(W: Tensor, percentile: float, qmax: int) -> Tensor:
    """fp16 per-row scales max(quantile_p(|W_r|) / q_max, 1 / q_max).

    The 1/q_max floor is the records' rule (reference.md 4.3); it binds for rows whose clipped
    max |w| is below 1 (see `floor_bound_rows`).
    """
    return candidate_row_scales(W, qmax, (percentile,))[0]


def candidate_row_scales(W: Tensor, qmax: int, percentiles=CLIP_PERCENTILES) -> Tensor:
    """Scales of every clip candidate, shape (len(percentiles), rows), fp16 (one sort per matrix)."""
    absW = W.detach().float().abs()
    probs = torch.tensor(percentiles, dtype=torch.float32, device=absW.device)
    clip = torch.quantile(absW, probs, dim=1)  # p = 1.0 gives the row max exactly
    return (clip / qmax).clamp_min(1.0 / qmax).to(torch.float16)


def floor_bound_rows(scale: Tensor, bits: int) -> int:
    """How many rows sit on the 1/q_max scale floor (reference.md 4.3 asks to log this)."""
    floor = torch.tensor(1.0 / qmax_for_bits(bits), dtype=torch.float16)
    return int((scale == floor).sum())


def rtn_quantize(W: Tensor, scale: Tensor, bits: int, mask: Tensor | None = None) -> Tensor:
    """Round-to-nearest int values for fixed per-row scales; entries where mask is False -> 0."""
    qmax = qmax_for_bits(bits)
    q = torch.clamp(torch.round(W.detach().float() / scale.float()[:, None]), -qmax, qmax)
    if mask is not None:
        q = q * mask
    return q.to(torch.int8)


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """W_hat = q * scale per row, in float32 (exact: |q| <= 127 times an fp16 fits fp32)."""
    return q.float() * scale.float()[:, None]


def rtn_clip_search(W: Tensor, bits: int, mask: Tensor | None = None,
                    percentiles=CLIP_PERCENTILES) -> Tensor:
    """Per row, the candidate scale whose round-to-nearest result has the smallest squared error."""
    Wf = W.detach().float()
    cands = candidate_row_scales(Wf, qmax_for_bits(bits), percentiles)
    errors = torch.stack([
        (Wf - dequantize(rtn_quantize(Wf, s, bits, mask), s)).pow(2).sum(dim=1) for s in cands
    ])
    best = errors.argmin(dim=0)
    return cands.gather(0, best[None]).squeeze(0)


def quantize_table_rows(W: Tensor, bits: int = 8,
                        percentile: float = EMBED_CLIP_PERCENTILE) -> tuple[Tensor, Tensor]:
    """Per-row quantisation of an embedding table: row-quantile clip, round to nearest.

    Values beyond the clip saturate at +-q_max through the clamp inside `rtn_quantize`.
    """
    scale = row_scales(W, percentile, qmax_for_bits(bits))
    return rtn_quantize(W, scale, bits), scale
