"""The boot module of a replay: `python -m audit.replay.boot train_gpt.py [args]` (also under torchrun).

It runs the submission's file as __main__ (runpy), unedited, after installing the instrumentation:
* the ledger recorder (audit.replay.tracker.Tracker) as a global TorchFunctionMode plus the global
  optimizer-step and module-forward hooks;
* tensor constructors from numpy/bytes/files (torch.from_numpy, tensor, as_tensor, frombuffer,
  from_file) that tag a tensor equal to a stretch of the validation stream, which the boot module
  reads itself from the val shards named by GOLF_REPLAY_VAL;
* torch.compile made the identity, so that every op runs eagerly in front of the recorder;
* virtual clocks (time.time, monotonic, perf_counter advance a fixed tick per call), so that a
  wallclock-driven schedule trains the same model in the baseline and in the probe run;
* a network guard: connecting to (or resolving) anything but the loopback, or starting a download
  tool (curl, wget, ...), raises OSError and is recorded (NET-1);
* on a machine without CUDA (GOLF_REPLAY_EMULATE, default auto), the CUDA emulation
  (audit.replay.emulation): the submission's CUDA code served by the CPU; on a CUDA machine none;
* Python 3.12 f-strings rewritten for 3.11 in memory (audit.replay.emulation.syntax);
and, when the file finishes (or fails), writes this rank's ledger to GOLF_REPLAY_OUT/ledger-rank<R>.pkl,
with the shims applied and what they could not provide (an unparseable file, a Triton kernel with
no equivalent: the run stops and the replay reports it).

Environment: GOLF_REPLAY_VAL (glob of the val shards), GOLF_REPLAY_OUT (folder for the ledgers),
GOLF_REPLAY_CAPTURE (comma-separated positions whose full distributions are kept),
GOLF_REPLAY_CLOCK_TICK (seconds per clock read, default 1e-3; 0 keeps the real clocks).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import pickle
import runpy
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from audit.replay import emulation
from audit.replay.emulation.syntax import UnsupportedSyntax, install_exec_hook, prepare
from audit.replay.tracker import Tracker
from golf.data.shards import list_shards, read_shard

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
CLOCK_TICK_S = 1e-3
_DOWNLOAD_TOOLS = {"curl", "wget", "aria2c", "huggingface-cli", "hf", "scp", "rsync", "ssh", "nc", "ftp"}


def _is_loopback(host) -> bool:
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _install_network_guard(tracker: Tracker) -> None:
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refuse(host, port):
        tracker.network_attempt(host, port)
        raise OSError(f"network access to {host}:{port} is blocked during a replay (NET-1)")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse(address[0], address[1])
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse(address[0], address[1])
        return real_connect_ex(self, address)

    def getaddrinfo(host, port, *args, **kwargs):
        if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
            refuse(host, port)
        return real_getaddrinfo(host, port, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    # download tools started as child processes escape the socket patch: refuse them by name
    real_popen_init, real_system = subprocess.Popen.__init__, os.system

    def program(command) -> str:
        if isinstance(command, (str, bytes)):
            words = shlex.split(os.fsdecode(command))
            return os.path.basename(words[0]) if words else ""
        items = list(command)
        return os.path.basename(os.fsdecode(items[0])) if items else ""

    def popen_init(self, args, *rest, **kwargs):
        if program(args) in _DOWNLOAD_TOOLS:
            refuse(program(args), "subprocess")
        real_popen_init(self, args, *rest, **kwargs)

    def system(command):
        if program(command) in _DOWNLOAD_TOOLS:
            refuse(program(command), "os.system")
        return real_system(command)

    subprocess.Popen.__init__, os.system = popen_init, system


def _install_tagging(tracker: Tracker) -> None:
    def wrap(make):
        def tagged(*args, **kwargs):
            out = make(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.dim() == 1 and out.numel() >= 32:
                tracker.tag_if_validation(out, how=make.__name__)
            return out

        tagged.__name__ = make.__name__
        tagged.__doc__ = make.__doc__
        return tagged

    for name in ("from_numpy", "tensor", "as_tensor", "frombuffer", "from_file", "asarray"):
        if hasattr(torch, name):
            setattr(torch, name, wrap(getattr(torch, name)))


def _install_virtual_clock(tick_s: float) -> None:
    """time.time/monotonic/perf_counter (and _ns) advance by `tick_s` per call, from their values
    now: schedules driven by the wallclock (the records' warmdown and stop) then do the same in the
    baseline and the probe run, which must train the same model. The recorder keeps the real clock.
    (A loop bounded only by the wallclock runs cap / tick_s clock reads: MAX_WALLCLOCK_SECONDS is
    set short for a replay.)"""
    ticks = itertools.count(1)
    for name in ("time", "monotonic", "perf_counter"):
        start = getattr(time, name)()
        setattr(time, name, lambda start=start: start + next(ticks) * tick_s)
        setattr(time, name + "_ns", lambda start=start: int((start + next(ticks) * tick_s) * 1e9))


def _no_compile(model=None, *args, **kwargs):
    """torch.compile without compiling: the recorder must see every op."""
    if model is None:
        return lambda fn: fn
    return model


def _validation_stream(pattern: str) -> tuple[np.ndarray, list[int]]:
    files = list_shards(pattern)
    parts = [np.asarray(read_shard(p)) for p in files]
    starts = np.cumsum([0] + [p.size for p in parts])[:-1].tolist()
    return np.concatenate(parts).astype(np.int32), starts


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m audit.replay.boot train_gpt.py [args...]", file=sys.stderr)
        return 2
    script = Path(argv[0]).resolve()
    out_dir = Path(os.environ["GOLF_REPLAY_OUT"])
    stream, starts = _validation_stream(os.environ["GOLF_REPLAY_VAL"])
    capture = tuple(int(x) for x in os.environ.get("GOLF_REPLAY_CAPTURE", "").split(",") if x.strip())
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    tracker = Tracker(stream, submission_files=(str(script),), capture=capture, rank=rank, world=world, starts=starts)
    _install_network_guard(tracker)
    _install_tagging(tracker)
    torch.compile = _no_compile
    tick = float(os.environ.get("GOLF_REPLAY_CLOCK_TICK", CLOCK_TICK_S))
    if tick > 0:  # 0: the run keeps the real clocks
        _install_virtual_clock(tick)
    record = emulation.Record()
    modes = [tracker]
    work_dir = out_dir / f"emulation-rank{rank}"
    # one folder for every rank: the unpacked file's path is part of each scoring site, and the sites of
    # all ranks must be the same for their passes to merge
    unpacked_dir = str(out_dir / "unpacked")
    if emulation.wanted():
        modes = emulation.install(str(script), modes, record, tracker.opaque_tensors, str(work_dir), unpacked_dir)
    install_exec_hook(str(script), unpacked_dir, record)
    tracker.install_hooks()
    sys.argv = [str(script), *argv[1:]]
    sys.path[0] = str(script.parent)
    code = 0
    entered = []
    try:
        compiled, rewritten = prepare(script.read_text(encoding="utf-8"), str(script))
        if rewritten:
            record.note(f"f-string rewrite ({rewritten} sites)")
        for mode in modes:
            mode.__enter__()
            entered.append(mode)
        runpy._run_module_code(compiled, mod_name="__main__", script_name=str(script))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UnsupportedSyntax as exc:
        record.gap("RP070", "syntax", f"{script.name} {exc} (Python {sys.version.split()[0]})")
    except emulation.EmulationGap as exc:
        record.gap(exc.code, exc.what, exc.detail)
    finally:
        for mode in reversed(entered):
            mode.__exit__(None, None, None)
        tracker.remove_hooks()
        tracker.ledger.emulation, tracker.ledger.gaps = record.applied, record.gaps
        ledger = tracker.finish()
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = out_dir / f".ledger-rank{rank}.pkl.partial"
        with open(partial, "wb") as f:
            pickle.dump(asdict(ledger), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, out_dir / f"ledger-rank{rank}.pkl")
    if code == 0:
        _leave_process_group()
    return code


def _leave_process_group() -> None:
    """Tear down a process group the run left open, after every rank has finished: left to the
    interpreter's exit, gloo sometimes aborts a rank ("terminate called without an active exception")
    once the run is already over."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - a rank that already left: nothing to meet, and the run is over
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
