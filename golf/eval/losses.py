"""Per-token soft-capped cross-entropy for scoring: a fused Triton kernel on CUDA, torch elsewhere.

Both paths compute, for every row of raw logits z (before the soft-cap) and its target t,
    z' = softcap * tanh(z / softcap),    nll = logsumexp(z') - z'[t]
in float32 and return one float32 loss per token. The Triton kernel reads bf16 or fp32 logits
row by row with an online logsumexp over vocabulary blocks, so the float32 copy of the logits
that the torch path materialises never exists. Scoring only: neither path is meant for backward
(training uses the model's own loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # the torch path serves every device without Triton
    triton = None


def softcap_cross_entropy_torch(logits: torch.Tensor, targets: torch.Tensor, softcap: float) -> torch.Tensor:
    """Reference path: per-token NLL (float32, shape of `targets`) of soft-capped `logits`."""
    z = logits.float()
    z = softcap * torch.tanh(z / softcap)
    nll = F.cross_entropy(z.reshape(-1, z.size(-1)), targets.reshape(-1).long(), reduction="none")
    return nll.reshape(targets.shape)


if triton is not None:

    @triton.jit
    def _softcap(z, softcap):
        # tanh through exp (libdevice.tanh has no interpreter implementation); the Taylor branch
        # avoids the cancellation of 1 - exp(-2|y|) near 0, which would cost ~1e-6 of accuracy.
        y = z / softcap
        a = tl.abs(y)
        e = tl.exp(-2.0 * a)
        big = (1.0 - e) / (1.0 + e)
        a2 = a * a
        small = a * (1.0 - a2 * (1.0 / 3.0 - a2 * (2.0 / 15.0 - a2 * (17.0 / 315.0))))
        t = tl.where(a < 0.0625, small, big)
        return softcap * tl.where(y < 0.0, -t, t)

    @triton.jit
    def _softcap_ce_kernel(
        logits_ptr, targets_ptr, loss_ptr, n_vocab, row_stride, softcap, BLOCK_V: tl.constexpr
    ):
        row = tl.program_id(0).to(tl.int64)
        row_ptr = logits_ptr + row * row_stride
        running_max = float("-inf")
        running_sum = 0.0
        for start in range(0, n_vocab, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            in_vocab = cols < n_vocab
            z = tl.load(row_ptr + cols, mask=in_vocab, other=0.0).to(tl.float32)
            z = tl.where(in_vocab, _softcap(z, softcap), float("-inf"))
            new_max = tl.maximum(running_max, tl.max(z, axis=0))
            running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
            running_max = new_max
        target = tl.load(targets_ptr + row).to(tl.int64)
        z_target = _softcap(tl.load(row_ptr + target).to(tl.float32), softcap)
        tl.store(loss_ptr + row, running_max + tl.log(running_sum) - z_target)


def softcap_cross_entropy_triton(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float, block_v: int = 1024
) -> torch.Tensor:
    """Fused path: same result as the torch path, one program per row, no float32 logits copy."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    vocab = logits.size(-1)
    rows = logits.reshape(-1, vocab)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    flat_targets = targets.reshape(-1).contiguous()
    if flat_targets.numel() != rows.size(0):
        raise ValueError("targets must have one entry per row of logits")
    losses = torch.empty(rows.size(0), dtype=torch.float32, device=logits.device)
    if rows.size(0):
        block = min(block_v, triton.next_power_of_2(vocab))
        _softcap_ce_kernel[(rows.size(0),)](
            rows, flat_targets, losses, vocab, rows.stride(0), float(softcap), BLOCK_V=block
        )
    return losses.reshape(targets.shape)


def softcap_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, softcap: float) -> torch.Tensor:
    """Per-token float32 NLL of soft-capped logits: the Triton kernel on CUDA, torch elsewhere."""
    if logits.is_cuda and triton is not None:
        return softcap_cross_entropy_triton(logits, targets, softcap)
    return softcap_cross_entropy_torch(logits, targets, softcap)
