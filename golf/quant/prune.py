"""Magnitude pruning as keep-masks, and the zero fraction measured on exported integers.

Per tensor, the `fraction` smallest-|w| entries are pruned (reference.md 4.5: threshold = the
fraction-quantile of |W| over the whole tensor). The exact count k = floor(fraction * numel) is
pruned via kthvalue, so the fraction does not depend on quantile interpolation. The masks are
handed to GPTQ (which keeps the pruned entries at 0 while propagating their error) and to the int8
embedding path, so the zeros survive export.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor


def magnitude_mask(W: Tensor, fraction: float) -> Tensor:
    """Bool keep-mask (True = keep) that prunes the floor(fraction * numel) smallest |w|."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune fraction must be in [0, 1), got {fraction}")
    absW = W.detach().float().abs()
    k = int(fraction * absW.numel())
    if k == 0:
        return torch.ones_like(absW, dtype=torch.bool)
    threshold = absW.flatten().kthvalue(k).values
    return absW > threshold


def magnitude_prune_masks(
    state_dict: Mapping[str, Tensor],
    fraction: float,
    min_numel: int = 65_536,
) -> dict[str, Tensor]:
    """Keep-masks for every 2-D float tensor with numel > min_numel (block matrices and tables)."""
    return {
        name: magnitude_mask(t, fraction)
        for name, t in state_dict.items()
        if t.is_floating_point() and t.ndim == 2 and t.numel() > min_numel
    }


def zero_fraction(tensors: Mapping[str, Tensor]) -> float:
    """Fraction of exact zeros over all given tensors (e.g. the exported integer values)."""
    total = sum(t.numel() for t in tensors.values())
    zeros = sum(int((t == 0).sum()) for t in tensors.values())
    return zeros / total if total else 0.0
