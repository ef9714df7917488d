"""torch.autocast("cuda", ...) served by the CPU.

With fp32 (GOLF_REPLAY_FP32, the default under emulation) a CUDA autocast region runs in the
tensors' own precision, normally fp32: this CPU has no bf16 units, so bf16 matmuls cost several
times their fp32 price. Without it the region is CPU autocast with the requested dtype.
"""

from __future__ import annotations

import torch


def install(fp32: bool, record) -> None:
    """Replace torch.autocast / torch.amp.autocast / torch.cuda.amp.autocast by the CPU version."""
    base = torch.amp.autocast_mode.autocast

    class CudaAutocastOnCpu(base):
        """An autocast whose "cuda" device type is the CPU (and, with fp32, a region left as it is)."""

        def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
            if device_type == "cuda":
                record.note("autocast-cuda->cpu-fp32" if fp32 else "autocast-cuda->cpu-bf16")
                device_type = "cpu"
                if fp32:
                    enabled = False
                elif dtype is None:
                    dtype = torch.bfloat16
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    def cuda_amp_autocast(enabled=True, dtype=torch.float16, cache_enabled=True):
        return CudaAutocastOnCpu("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast = CudaAutocastOnCpu
    torch.amp.autocast = CudaAutocastOnCpu
    torch.cuda.amp.autocast = cuda_amp_autocast
