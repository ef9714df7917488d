"""Turn a float state dict into its quantised form and back (reference.md 4.4).

Per entry, in this order:
1. non-float tensors -> stored unchanged ("raw");
2. float tensors with numel <= passthrough_numel -> fp16 ("fp16": scalars, gains, mixes, skip
   weights, small projections);
3. block matrices (2-D, `is_block_matrix(name)`, default: name contains ".attn." or ".mlp.") ->
   GPTQ with `bits` (int5) and per-row fp16 scales ("gptq"); each needs a Hessian;
4. everything else (token embedding, bigram table, value-embedding table) -> `embed_bits` (int8)
   per row with the row-quantile clip ("table").
Magnitude pruning (prune.py) is applied to every 2-D tensor above passthrough_numel: as a GPTQ
mask for block matrices, as zeroed entries before int8 rounding for the tables.
`dequantize_state` rebuilds the state dict in the original dtypes (GPU: fused Triton kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import Tensor

from golf.errors import GolfError
from golf.quant.gptq import gptq_quantize
from golf.quant.prune import magnitude_prune_masks, zero_fraction
from golf.quant.rtn import floor_bound_rows, quantize_table_rows
from golf.quant.triton_dequant import OUT_DTYPES, dequantize_rows

KINDS = ("raw", "fp16", "gptq", "table")


def default_is_block_matrix(name: str) -> bool:
    return ".attn." in name or ".mlp." in name


@dataclass
class QuantizedTensor:
    """One state-dict entry. For "gptq"/"table": q (int8-held, 2-D) and scale (fp16, one per row);
    for "raw"/"fp16": value. `dtype` and `shape` are the original ones."""

    kind: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    bits: int = 0
    q: Tensor | None = None
    scale: Tensor | None = None
    value: Tensor | None = None


@dataclass
class QuantizedState:
    entries: dict[str, QuantizedTensor] = field(default_factory=dict)

    def integer_values(self, kinds=("gptq", "table")) -> dict[str, Tensor]:
        """The exported integers per name (for range and zero-fraction checks)."""
        return {n: e.q for n, e in self.entries.items() if e.kind in kinds}


def summarize(qstate: QuantizedState) -> dict:
    """Numbers for the run log: entries per kind, quantised values, zero fractions, and the rows
    whose scale sits on the 1/q_max floor (reference.md 4.3 asks to log how often it binds)."""
    gptq = {n: e.q for n, e in qstate.entries.items() if e.kind == "gptq"}
    return {
        "entries": {k: sum(e.kind == k for e in qstate.entries.values()) for k in KINDS},
        "gptq_values": sum(q.numel() for q in gptq.values()),
        "table_values": sum(q.numel() for q in qstate.integer_values(("table",)).values()),
        "gptq_zero_fraction": round(zero_fraction(gptq), 6),
        "table_zero_fraction": round(zero_fraction(qstate.integer_values(("table",))), 6),
        "gptq_rows": sum(q.shape[0] for q in gptq.values()),
        "gptq_rows_on_scale_floor": sum(floor_bound_rows(e.scale, e.bits)
                                        for e in qstate.entries.values() if e.kind == "gptq"),
    }


def _as_rows(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1) if t.ndim >= 2 else t.reshape(1, -1)


@torch.no_grad()
def quantize_state_dict(
    state_dict: Mapping[str, Tensor],
    hessians: Mapping[str, Tensor],
    *,
    bits: int = 5,
    embed_bits: int = 8,
    passthrough_numel: int = 65_536,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = True,
    mode: str = "canonical",
    prune_fraction: float = 0.0,
    is_block_matrix: Callable[[str], bool] = default_is_block_matrix,
    device: torch.device | str | None = None,
) -> QuantizedState:
    """Quantise every entry of `state_dict`; `hessians` are keyed by the same names.

    GPTQ runs on `device` (default: where each weight lies; a GPU is far faster than the CPU);
    the stored result is always on the CPU.
    """
    masks = magnitude_prune_masks(state_dict, prune_fraction, passthrough_numel) if prune_fraction else {}
    out = QuantizedState()
    for name, t in state_dict.items():
        meta = dict(dtype=t.dtype, shape=tuple(t.shape))
        if not t.is_floating_point():
            out.entries[name] = QuantizedTensor("raw", value=t.detach().cpu().clone(), **meta)
        elif t.numel() <= passthrough_numel:
            out.entries[name] = QuantizedTensor("fp16", value=t.detach().cpu().to(torch.float16), **meta)
        elif t.ndim == 2 and is_block_matrix(name):
            if name not in hessians:
                raise GolfError(f"no Hessian for block matrix {name!r}: calibration did not hook it")
            W = t if device is None else t.to(device)
            q, scale = gptq_quantize(W, hessians[name].to(W.device), bits, block_size, damp, act_order,
                                     mask=masks.get(name), mode=mode)
            out.entries[name] = QuantizedTensor("gptq", bits=bits, q=q.cpu(), scale=scale.cpu(), **meta)
        else:
            rows = _as_rows(t.detach().float())
            if name in masks:
                rows = rows * masks[name].to(rows.device)
            q, scale = quantize_table_rows(rows, embed_bits)
            out.entries[name] = QuantizedTensor("table", bits=embed_bits, q=q.cpu(), scale=scale.cpu(), **meta)
    return out


def dequantize_state(qstate: QuantizedState, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """Back to a float state dict in the original dtypes and shapes, on `device`."""
    out = {}
    for name, e in qstate.entries.items():
        if e.kind in ("raw", "fp16"):
            out[name] = e.value.to(device=device, dtype=e.dtype)
        else:
            direct = e.dtype if e.dtype in OUT_DTYPES else torch.float32
            rows = dequantize_rows(e.q.to(device), e.scale.to(device), direct)
            out[name] = rows.to(e.dtype).reshape(e.shape)
    return out
