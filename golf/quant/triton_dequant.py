"""Fused per-row dequantisation W = q * scale[:, None] (int8-held int5/int8 values, fp16 scales).

On CUDA a Triton kernel reads the int8 values and the row scale and writes the output dtype in one
pass; elsewhere (or without triton) a torch expression does the same. Both compute the product in
fp32, which is exact (|q| <= 127 has 7 bits, an fp16 scale 11), and then round once to the output
dtype, so they agree bit for bit. The kernel rounds fp32 -> bf16 with an explicit integer
round-to-nearest-even instead of a cast: Triton's CPU interpreter truncates in that cast while
the GPU rounds to nearest even, and the explicit form makes both equal torch's `.to(bfloat16)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # triton is an optional (gpu) dependency
    triton = None

OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_BLOCK_COLS = 1024


def dequantize_rows_torch(q: Tensor, scale: Tensor, out_dtype: torch.dtype = torch.float32) -> Tensor:
    return (q.float() * scale.float()[:, None]).to(out_dtype)


if triton is not None:

    @triton.jit
    def _dequant_kernel(q_ptr, s_ptr, out_ptr, n_cols, OUT_KIND: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = cols < n_cols
        offs = row.to(tl.int64) * n_cols + cols
        q = tl.load(q_ptr + offs, mask=inside, other=0).to(tl.float32)
        value = q * tl.load(s_ptr + row).to(tl.float32)
        if OUT_KIND == 0:  # float32
            tl.store(out_ptr + offs, value, mask=inside)
        elif OUT_KIND == 1:  # bfloat16 bits, round to nearest even (finite values only)
            bits = value.to(tl.int32, bitcast=True)
            bits = bits + 0x7FFF + ((bits >> 16) & 1)
            tl.store(out_ptr + offs, (bits >> 16).to(tl.int16), mask=inside)
        else:  # float16
            tl.store(out_ptr + offs, value.to(tl.float16), mask=inside)


def dequantize_rows_triton(q: Tensor, scale: Tensor, out_dtype: torch.dtype = torch.float32) -> Tensor:
    """The Triton kernel; on CPU tensors it needs TRITON_INTERPRET=1 (set before importing triton)."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    if out_dtype not in OUT_DTYPES:
        raise ValueError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")
    if q.dtype != torch.int8 or q.ndim != 2 or scale.shape != (q.shape[0],):
        raise ValueError("expected int8 q of shape (rows, cols) and one scale per row")
    q = q.contiguous()
    out = torch.empty(q.shape, dtype=out_dtype, device=q.device)
    target = out.view(torch.int16) if out_dtype == torch.bfloat16 else out
    if q.numel():
        grid = (q.shape[0], triton.cdiv(q.shape[1], _BLOCK_COLS))
        _dequant_kernel[grid](q, scale.to(torch.float16).contiguous(), target, q.shape[1],
                              OUT_KIND=OUT_DTYPES.index(out_dtype), BLOCK=_BLOCK_COLS)
    return out


def dequantize_rows(q: Tensor, scale: Tensor, out_dtype: torch.dtype = torch.float32) -> Tensor:
    """q * scale per row in `out_dtype`: the Triton kernel on CUDA, torch otherwise."""
    if triton is not None and q.is_cuda and out_dtype in OUT_DTYPES:
        return dequantize_rows_triton(q, scale, out_dtype)
    return dequantize_rows_torch(q, scale, out_dtype)
