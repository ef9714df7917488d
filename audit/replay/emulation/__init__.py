"""CUDA emulation for a replay on a machine without CUDA: the submission's own train_gpt.py, written
for H100s, runs unedited on the CPU.

`wanted()` decides from GOLF_REPLAY_EMULATE (1: always, 0: never, auto (default): only when torch
sees no CUDA device; on a CUDA machine the same boot path runs with no shim at all).
`install(script, tracker)` applies every shim before the submission's code runs; each is a small
named module here (cuda, autocast, distributed, optim, flash_attn, hub_kernels, triton, inference,
serialization, threads, tools) and reports what it applied to the Record, whose list becomes the audit JSON's
replay.emulation. The 3.12 f-string rewrite (syntax) is applied to the source by the boot module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass
class Record:
    """The shims applied in this process, in order, and the gaps no shim could close."""

    applied: list = field(default_factory=list)
    gaps: list = field(default_factory=list)  # dicts: code, what, detail

    def note(self, name: str) -> None:
        if name not in self.applied:
            self.applied.append(name)

    def gap(self, code: str, what: str, detail: str) -> None:
        self.gaps.append(dict(code=code, what=what, detail=detail))


class EmulationGap(Exception):
    """Something the submission needs that no shim provides: the run stops, and the replay reports a
    finding with `code` naming `what` instead of crashing."""

    def __init__(self, code: str, what: str, detail: str):
        super().__init__(detail)
        self.code, self.what, self.detail = code, what, detail


def wanted(env: dict | None = None) -> bool:
    """Whether to emulate CUDA: GOLF_REPLAY_EMULATE=1/0, or auto (emulate when CUDA is absent)."""
    mode = (env if env is not None else os.environ).get("GOLF_REPLAY_EMULATE", "auto").strip().lower()
    if mode in ("1", "true", "yes", "on"):
        return True
    if mode in ("0", "false", "no", "off"):
        return False
    return not torch.cuda.is_available()


def fp32_wanted(env: dict | None = None) -> bool:
    """GOLF_REPLAY_FP32 (default 1 under emulation): run the autocast regions in fp32 (no bf16 units on
    the CPU: bf16 matmuls are several times slower there)."""
    return (env if env is not None else os.environ).get("GOLF_REPLAY_FP32", "1").strip() not in ("0", "false", "no", "off")


def install(script: str, modes: list, record: Record, on_opaque, work_dir: str, unpacked_dir: str) -> list:
    """Apply every shim for `script` (the submission's entry); `modes` are the run's function modes
    (entered again in each new thread); `on_opaque(label, tensors)` tells the ledger of a computation
    it cannot see into; stand-in programs go to work_dir/tools, and the submission's code includes
    what it unpacks into unpacked_dir (syntax.install_exec_hook). Returns the modes to enter, the
    device map first (outermost)."""
    from audit.replay.emulation import (autocast, cuda, distributed, flash_attn, hub_kernels, inference, optim,
                                        serialization, threads, tools, triton)

    folders = (os.path.dirname(os.path.abspath(script)), unpacked_dir)
    device_map = cuda.install(folders, record)
    regions = autocast.install(fp32_wanted(), record)
    distributed.install(record)
    optim.install(record)
    flash_attn.install(record)
    hub_kernels.install(record)
    triton.install(record, on_opaque)
    inference.install(record)
    serialization.install(record)
    tools.install(record, os.path.join(work_dir, "tools"))
    all_modes = [device_map, *([regions] if regions else []), *modes]
    threads.install(all_modes, record)
    return all_modes
