"""torch.optim on the CPU: `fused=True` (a CUDA kernel for the update) is dropped from every
optimizer that takes it; the update is the same, computed by the for-each or loop path."""

from __future__ import annotations

import functools
import inspect

import torch


def install(record) -> None:
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            continue
        if "fused" not in inspect.signature(cls.__init__).parameters:
            continue
        cls.__init__ = _without_fused(cls.__init__, record)


def _without_fused(init, record):
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if kwargs.get("fused"):
            kwargs["fused"] = None
            record.note("optimizer fused=True dropped")
        return init(self, *args, **kwargs)

    return wrapped
