"""torch.autocast("cuda", ...) served by the CPU.

With fp32 (GOLF_REPLAY_FP32, the default under emulation) a CUDA autocast region computes in fp32:
this CPU has no bf16 units, so bf16 matmuls cost several times their fp32 price. CPU autocast has
no fp32 target, so the region is autocast's own rule with fp32 as the low precision: the ops
autocast would cast (matmuls, linear, convolutions, attention: FP32Regions) get their half-precision
tensor arguments cast to fp32, so bf16 weights meet fp32 activations as they would meet under
autocast. Without fp32 the region is CPU autocast with the requested dtype.
"""

from __future__ import annotations

import threading

import torch
from torch.overrides import TorchFunctionMode

# the ops CUDA autocast runs in low precision: their arguments must share one dtype
_CAST_OPS = {
    "linear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "baddbmm", "addmm", "addbmm", "addmv", "mv",
    "einsum", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "prelu",
    "scaled_dot_product_attention", "chain_matmul", "multi_dot", "tensordot", "dot", "vdot", "inner", "outer",
}
_HALF = (torch.bfloat16, torch.float16)


class FP32Regions(TorchFunctionMode):
    """Inside an emulated CUDA autocast region (depth > 0 on this thread), casts the half-precision
    tensor arguments of autocast's low-precision ops to fp32."""

    def __init__(self):
        super().__init__()
        self.local = threading.local()

    @property
    def depth(self) -> int:
        return getattr(self.local, "depth", 0)

    @depth.setter
    def depth(self, value: int) -> None:
        self.local.depth = value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.depth and getattr(func, "__name__", "") in _CAST_OPS:
            args = tuple(_up(a) for a in args)
            kwargs = {k: _up(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _up(value):
    if isinstance(value, torch.Tensor) and value.dtype in _HALF:
        return value.float()
    if type(value) in (list, tuple):
        return type(value)(_up(v) for v in value)
    return value


def install(fp32: bool, record) -> FP32Regions | None:
    """Replace torch.autocast / torch.amp.autocast / torch.cuda.amp.autocast by the CPU version;
    returns the mode that serves fp32 regions (None without fp32)."""
    base = torch.amp.autocast_mode.autocast
    regions = FP32Regions() if fp32 else None

    class CudaAutocastOnCpu(base):
        """An autocast whose "cuda" device type is the CPU (with fp32: an FP32Regions region)."""

        def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
            self.fp32_region = device_type == "cuda" and fp32 and enabled
            if device_type == "cuda":
                record.note("autocast-cuda->cpu-fp32" if fp32 else "autocast-cuda->cpu-bf16")
                device_type = "cpu"
                if fp32:
                    enabled = False
                elif dtype is None:
                    dtype = torch.bfloat16
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

        def __enter__(self):
            if self.fp32_region:
                regions.depth += 1
            return super().__enter__()

        def __exit__(self, *exc):
            if self.fp32_region:
                regions.depth -= 1
            return super().__exit__(*exc)

    def cuda_amp_autocast(enabled=True, dtype=torch.float16, cache_enabled=True):
        return CudaAutocastOnCpu("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast = CudaAutocastOnCpu
    torch.amp.autocast = CudaAutocastOnCpu
    torch.cuda.amp.autocast = cuda_amp_autocast
    return regions
