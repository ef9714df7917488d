"""The fused Triton dequantisation kernel (CPU interpreter) against the torch fallback, bit for bit."""

import os

import pytest
import torch

from golf.quant.triton_dequant import (
    OUT_DTYPES,
    dequantize_rows,
    dequantize_rows_torch,
    dequantize_rows_triton,
)

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1",
    reason="the Triton kernel needs CUDA or TRITON_INTERPRET=1",
)

BITS_OF = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def same_bits(a, b):
    return a.dtype == b.dtype and torch.equal(a.view(BITS_OF[a.dtype]), b.view(BITS_OF[b.dtype]))


@pytest.mark.parametrize("out_dtype", OUT_DTYPES)
@pytest.mark.parametrize("shape", [(7, 2051), (3, 5), (64, 64)])
def test_kernel_matches_fallback_bit_exactly(out_dtype, shape):
    gen = torch.Generator().manual_seed(shape[0] * shape[1])
    q = torch.randint(-127, 128, shape, dtype=torch.int8, generator=gen)
    scale = (torch.rand(shape[0], generator=gen) * 0.2).to(torch.float16)
    assert same_bits(dequantize_rows_triton(q, scale, out_dtype), dequantize_rows_torch(q, scale, out_dtype))


def test_bfloat16_ties_round_to_even():
    """1 + 2^-8 and 1 + 3*2^-8 lie exactly halfway between bf16 neighbours; the interpreter's own
    cast would truncate the first to 1 (right) and the second to 1 + 2^-7 (wrong)."""
    q = torch.tensor([[1, 1, -1, 0]], dtype=torch.int8)
    for s in (1 + 2**-8, 1 + 3 * 2**-8):
        scale = torch.tensor([s], dtype=torch.float16)
        out = dequantize_rows_triton(q, scale, torch.bfloat16)
        assert same_bits(out, dequantize_rows_torch(q, scale, torch.bfloat16))
    assert dequantize_rows_triton(q, scale, torch.bfloat16)[0, 0].item() == 1 + 2**-6


def test_dispatch_uses_the_fallback_off_cuda_and_rejects_bad_inputs():
    q = torch.randint(-15, 16, (4, 9), dtype=torch.int8)
    scale = torch.rand(4).to(torch.float16)
    assert same_bits(dequantize_rows(q, scale, torch.bfloat16), dequantize_rows_torch(q, scale, torch.bfloat16))
    with pytest.raises(ValueError):
        dequantize_rows_triton(q.to(torch.int16), scale)
    with pytest.raises(ValueError):
        dequantize_rows_triton(q, scale[:3])
