"""torch.distributed on the CPU: NCCL becomes gloo, an env:// initialisation without torchrun's
variables becomes a one-process group on the loopback, and DistributedDataParallel forgets the CUDA
device it was given (device_ids / output_device only work for modules on a CUDA device)."""

from __future__ import annotations

import os
import socket

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo(backend):
    if backend is None or "nccl" in str(backend):
        return "gloo"
    return backend


def install(record) -> None:
    real_init, real_new_group, real_barrier = dist.init_process_group, dist.new_group, dist.barrier

    def init_process_group(backend=None, init_method=None, *args, **kwargs):
        kwargs.pop("device_id", None)  # binds the group to a CUDA device
        if init_method in (None, "env://") and "store" not in kwargs and "RANK" not in os.environ:
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", str(_free_port()))
            os.environ["RANK"], os.environ["WORLD_SIZE"] = "0", "1"
            record.note("env:// init without RANK -> one process")
        if _gloo(backend) != backend:
            record.note("nccl->gloo")
        return real_init(_gloo(backend), init_method, *args, **kwargs)

    def new_group(ranks=None, timeout=None, backend=None, *args, **kwargs):
        return real_new_group(ranks, timeout, _gloo(backend) if backend else backend, *args, **kwargs)

    def barrier(group=None, async_op=False, device_ids=None):
        return real_barrier(group=group, async_op=async_op)

    dist.init_process_group, dist.new_group, dist.barrier = init_process_group, new_group, barrier

    real_ddp_init = DistributedDataParallel.__init__

    def ddp_init(self, module, device_ids=None, output_device=None, *args, **kwargs):
        if device_ids is not None or output_device is not None:
            record.note("DistributedDataParallel device_ids dropped (module on the CPU)")
        real_ddp_init(self, module, None, None, *args, **kwargs)

    DistributedDataParallel.__init__ = ddp_init
