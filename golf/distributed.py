"""torch.distributed set-up for runs launched by torchrun (env RANK, WORLD_SIZE, LOCAL_RANK).

NCCL when CUDA is available, gloo on CPU; without those env vars a run is a single process.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


@contextlib.contextmanager
def process_group():
    """Yields (rank, world); joins (and afterwards leaves) the process group under torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        yield 0, 1
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        dist.destroy_process_group()
