"""CUDA as seen by the submission, served by the CPU.

* `torch.cuda.is_available()` and `Tensor.is_cuda` say True to the submission's code only (its folder,
  and the folder of the source it unpacks):
  torch's own code keeps seeing the truth and takes no CUDA path;
* DeviceMap, a TorchFunctionMode, rewrites every "cuda"/"cuda:N"/torch.device("cuda", N) argument
  to the CPU (factories, .to(), Module.to through it), makes .cuda() and .pin_memory() the identity;
* the torch.cuda functions a training script calls get each its own CPU stand-in (a no-op, a zero
  or a constant: memory counters, synchronize, set_device, Event, Stream, device properties).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from types import SimpleNamespace

import torch
from torch.overrides import TorchFunctionMode

CPU = torch.device("cpu")


def _is_cuda(d) -> bool:
    if isinstance(d, torch.device):
        return d.type == "cuda"
    return isinstance(d, str) and (d == "cuda" or d.startswith("cuda:"))


def _to_cpu(value):
    return CPU if _is_cuda(value) else value


class DeviceMap(TorchFunctionMode):
    """Maps CUDA devices named in any torch call to the CPU (noted in the record when it first does)."""

    def __init__(self, record):
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("cuda", "pin_memory") and args and isinstance(args[0], torch.Tensor):
            self.record.note(f"Tensor.{name} as identity")
            return args[0]
        if any(_is_cuda(a) for a in args):
            self.record.note("cuda-device-map")
            if func is torch.device:  # torch.device("cuda", N)
                return CPU
            args = tuple(_to_cpu(a) for a in args)
        device = kwargs.get("device")
        if device is not None and (_is_cuda(device) or (type(device) is int and name != "get_device")):
            kwargs = {**kwargs, "device": CPU}
            self.record.note("cuda-device-map")
        if kwargs.get("pin_memory"):
            kwargs = {**kwargs, "pin_memory": False}
        return func(*args, **kwargs)


def _caller_in(folders: tuple[str, ...]):
    prefix = tuple(folder.rstrip(os.sep) + os.sep for folder in folders)

    def from_submission(depth: int = 2) -> bool:
        return sys._getframe(depth).f_code.co_filename.startswith(prefix)

    return from_submission


class _Event:
    """torch.cuda.Event on the CPU: elapsed_time from the real clock, in milliseconds."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        self.t = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        return None

    def wait(self, stream=None) -> None:
        return None

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "_Event") -> float:
        return (end.t - self.t) * 1000.0


class _Stream:
    """torch.cuda.Stream on the CPU: every operation is already ordered."""

    def __init__(self, device=None, priority: int = 0, **kwargs):
        self.device = CPU

    def synchronize(self) -> None:
        return None

    def wait_stream(self, other) -> None:
        return None

    def wait_event(self, event) -> None:
        return None

    def record_event(self, event=None):
        event = event or _Event()
        event.record()
        return event

    def query(self) -> bool:
        return True


def install(folders: tuple[str, ...], record) -> DeviceMap:
    """Install the torch.cuda stand-ins for the submission whose code lies in `folders`; returns the
    device map mode."""
    from_submission = _caller_in(folders)
    world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    real_available = torch.cuda.is_available
    real_is_cuda = torch.Tensor.is_cuda

    def is_available() -> bool:
        if from_submission():
            record.note("torch.cuda.is_available() true for the submission")
            return True
        return real_available()

    def is_cuda(self) -> bool:
        return True if from_submission() else real_is_cuda.__get__(self)

    def synchronize(device=None) -> None:
        return None

    def set_device(device) -> None:
        return None

    def empty_cache() -> None:
        return None

    def reset_peak_memory_stats(device=None) -> None:
        return None

    def max_memory_allocated(device=None) -> int:
        return 0

    def max_memory_reserved(device=None) -> int:
        return 0

    def memory_allocated(device=None) -> int:
        return 0

    def memory_reserved(device=None) -> int:
        return 0

    def mem_get_info(device=None) -> tuple[int, int]:
        return (80 << 30, 80 << 30)

    def device_count() -> int:
        return world

    def current_device() -> int:
        return local_rank

    def get_device_name(device=None) -> str:
        return "emulated CUDA device (CPU)"

    def get_device_capability(device=None) -> tuple[int, int]:
        return (9, 0)

    def get_device_properties(device=None):
        return SimpleNamespace(name=get_device_name(), major=9, minor=0, multi_processor_count=132,
                               total_memory=80 << 30, is_integrated=False)

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return True

    def current_stream(device=None) -> _Stream:
        return _Stream()

    def default_stream(device=None) -> _Stream:
        return _Stream()

    def stream(s=None):
        return contextlib.nullcontext(s)

    def set_per_process_memory_fraction(fraction, device=None) -> None:
        return None

    shims = dict(is_available=is_available, synchronize=synchronize, set_device=set_device, empty_cache=empty_cache,
                 reset_peak_memory_stats=reset_peak_memory_stats, max_memory_allocated=max_memory_allocated,
                 max_memory_reserved=max_memory_reserved, memory_allocated=memory_allocated,
                 memory_reserved=memory_reserved, mem_get_info=mem_get_info, device_count=device_count,
                 current_device=current_device, get_device_name=get_device_name,
                 get_device_capability=get_device_capability, get_device_properties=get_device_properties,
                 is_bf16_supported=is_bf16_supported, current_stream=current_stream, default_stream=default_stream,
                 stream=stream,
                 set_per_process_memory_fraction=set_per_process_memory_fraction, Event=_Event, Stream=_Stream)
    for name, shim in shims.items():
        setattr(torch.cuda, name, shim)
    torch.Tensor.is_cuda = property(is_cuda)
    return DeviceMap(record)
