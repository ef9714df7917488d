"""torch.inference_mode as torch.no_grad: the records score under inference_mode and later train
on the same tensors (TTT), which eager PyTorch refuses ("Inference tensors cannot be saved for
backward") where their compiled graphs did not; no_grad computes the same values."""

from __future__ import annotations

import torch
from torch.autograd.grad_mode import _DecoratorContextManager


class _NoGradInference(_DecoratorContextManager):
    """inference_mode(True) as no_grad (also as a bare or called decorator); inference_mode(False)
    leaves the grad mode alone."""

    def __new__(cls, mode=True):
        if callable(mode):  # @torch.inference_mode without parentheses
            return cls()(mode)
        return super().__new__(cls)

    record = None

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)
        self.prev = True

    def __enter__(self) -> None:
        self.prev = torch.is_grad_enabled()
        if self.mode:
            self.record.note("inference_mode->no_grad")
            torch.set_grad_enabled(False)

    def __exit__(self, *exc) -> None:
        torch.set_grad_enabled(self.prev)

    def clone(self):
        return self.__class__(self.mode)


def install(record) -> None:
    _NoGradInference.record = record
    torch.inference_mode = _NoGradInference
