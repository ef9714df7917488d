"""The fused Triton soft-capped CE (run by the interpreter on CPU) against the torch path."""

import math

import pytest
import torch

from golf.eval.losses import softcap_cross_entropy, softcap_cross_entropy_torch, softcap_cross_entropy_triton


def float64_reference(logits, targets, softcap):
    z = softcap * torch.tanh(logits.double() / softcap)
    return torch.logsumexp(z, -1) - z.gather(-1, targets[..., None]).squeeze(-1)


@pytest.mark.parametrize(
    "vocab, dtype, scale, block_v",
    [
        (320, torch.float32, 3.0, 128),  # several vocab blocks, the last one partial
        (1024, torch.bfloat16, 4.0, 256),  # bf16 logits read without an fp32 copy
        (77, torch.float32, 40.0, 1024),  # one block larger than the vocab; logits deep in the cap
    ],
)
def test_triton_kernel_equals_torch_path(vocab, dtype, scale, block_v):
    torch.manual_seed(vocab)
    logits = (torch.randn(3, 11, vocab) * scale).to(dtype)
    targets = torch.randint(0, vocab, (3, 11))
    fused = softcap_cross_entropy_triton(logits, targets, 30.0, block_v=block_v)
    reference = softcap_cross_entropy_torch(logits, targets, 30.0)
    assert fused.dtype == torch.float32 and fused.shape == targets.shape
    assert (fused - reference).abs().max().item() <= 1e-5
    assert (fused.double() - float64_reference(logits, targets, 30.0)).abs().max().item() <= 1e-5


def test_triton_kernel_reads_strided_rows():
    torch.manual_seed(1)
    wide = torch.randn(6, 200)
    logits = wide[:, :150]  # rows 200 apart in memory
    targets = torch.randint(0, 150, (6,))
    fused = softcap_cross_entropy_triton(logits, targets, 30.0, block_v=64)
    assert torch.allclose(fused, softcap_cross_entropy_torch(logits, targets, 30.0), atol=1e-5, rtol=0)


def test_softcap_is_applied_before_the_loss():
    # two logits 0 and 100 with the target on the first: capped to 0 and 30*tanh(10/3)
    logits = torch.tensor([[0.0, 100.0]])
    expected = math.log(1 + math.exp(30 * math.tanh(100 / 30)))
    got = softcap_cross_entropy(logits, torch.tensor([0]), 30.0)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    assert softcap_cross_entropy_triton(logits, torch.tensor([0]), 30.0).item() == pytest.approx(expected, abs=1e-5)


def test_empty_batch():
    assert softcap_cross_entropy_triton(torch.zeros(0, 16), torch.zeros(0, dtype=torch.long), 30.0).numel() == 0
