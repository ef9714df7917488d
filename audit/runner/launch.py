"""Launch a submission folder's train_gpt.py under torchrun, one seed at a time, each in its own run
folder, with the network off where the machine allows it and a hard wallclock limit.

* Command: `python -m torch.distributed.run --standalone --nproc_per_node=N train_gpt.py`; with
  several nodes `--nnodes --node_rank --rdzv-backend=c10d --rdzv-endpoint --rdzv-id` instead of
  `--standalone`. The seed goes in the SEED env var (the records read it), the run id in RUN_ID.
* Run folder: RUNS/seed_<S>/ gets a copy of the submission folder (without its shipped logs), the
  captured console output train_seed<S>.log, and whatever the script writes (logs/, the artifact).
* Network: single-node runs are wrapped in `unshare -rn` (a user + network namespace holding only
  a loopback, which is brought up for torchrun's rendezvous and gloo). Multi-node runs need the
  network, and machines that forbid user namespaces cannot do it: the SeedRun says which applied.
* Smoke (`golf validate --smoke`): the entry runs under the replay's boot module (`-m
  audit.replay.boot train_gpt.py`: CUDA emulated where there is none, virtual clocks), the env
  shrunk to toy sizes by the caller, synthetic data linked into the run folder as data/...
* Wallclock: the run is its own session; past the limit the whole process tree is signalled
  (SIGTERM, then SIGKILL after a grace period): its process group and every descendant, because
  torchrun starts each worker in a session of its own, out of reach of a plain killpg.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from audit.runner.logs import RunSummary, parse_log_file
from golf.errors import GolfError

ENTRY = "train_gpt.py"
DEFAULT_TIMEOUT_S = 1320.0  # 600 s training + 600 s evaluation + 120 s start-up and compile
KILL_GRACE_S = 5.0
_STEP = re.compile(r"^(?:step\s*:\s*)?(\d+)\s*/\s*(\d+)\b")
# brings the namespace's loopback up (it starts down), then becomes the real command
_LOOPBACK_UP = 'ip link set lo up || exit 97; exec "$@"'


@dataclass
class LaunchSpec:
    folder: Path
    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    env: dict[str, str] = field(default_factory=dict)  # DATA_PATH, TOKENIZER_PATH, overrides
    isolate_network: bool = True
    entry: str = ENTRY
    smoke: bool = False  # run the entry under audit.replay.boot (see the module docstring)
    link_data: object | None = None  # smoke: the audit.replay.synthdata.SynthData to link as data/


@dataclass
class SeedRun:
    seed: int
    run_dir: str
    log: str
    command: list[str]
    returncode: int | None
    timed_out: bool
    wall_seconds: float
    network: str  # how the network was handled, in words
    summary: RunSummary

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def network_isolation() -> tuple[bool, str]:
    """Whether `unshare -rn` with a working loopback is available here, and why not."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False, "network not isolated: unshare or ip is not installed"
    try:
        probe = subprocess.run(["unshare", "-rn", "sh", "-c", _LOOPBACK_UP, "sh", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"network not isolated: unshare failed ({exc})"
    if probe.returncode != 0:
        reason = probe.stderr.decode(errors="replace").strip().splitlines()
        return False, f"network not isolated: unshare -rn refused ({reason[-1] if reason else probe.returncode})"
    return True, "network isolated (unshare -rn: loopback only)"


def torchrun_command(spec: LaunchSpec, run_id: str) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={spec.nproc}"]
    if spec.nnodes > 1:
        if not spec.rdzv_endpoint:
            raise GolfError("several nodes need --rdzv-endpoint HOST:PORT")
        cmd += [f"--nnodes={spec.nnodes}", f"--node_rank={spec.node_rank}", "--rdzv-backend=c10d",
                f"--rdzv-endpoint={spec.rdzv_endpoint}", f"--rdzv-id={run_id}"]
    else:
        cmd.append("--standalone")
    return cmd + (["-m", "audit.replay.boot", spec.entry] if spec.smoke else [spec.entry])


def _prepare_run_dir(spec: LaunchSpec, run_dir: Path) -> None:
    """A fresh copy of the submission folder, without the logs it ships (they are not this run's)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(spec.folder, run_dir, symlinks=True,
                    ignore=shutil.ignore_patterns("*.log", "logs", "__pycache__", "runs"))


def _alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's zombie waits for init and holds nothing)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(pid: int, grace_s: float = KILL_GRACE_S) -> list[int]:
    """SIGTERM the process group of `pid` and every descendant, SIGKILL what is left after
    `grace_s`; returns the pids that were signalled."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    signalled = [p.pid for p in procs]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + wait_s
        while (procs := [p for p in procs if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not procs:
            break
    return signalled


def launch_seed(
    spec: LaunchSpec,
    seed: int,
    runs_root: Path,
    on_progress: Callable[[int, int], None] | None = None,
    poll_s: float = 0.2,
) -> SeedRun:
    """Run one seed to completion or to its wallclock limit; parse its log."""
    if not (spec.folder / spec.entry).is_file():
        raise GolfError(f"{spec.folder / spec.entry} does not exist")
    run_dir = runs_root / f"seed_{seed}"
    _prepare_run_dir(spec, run_dir)
    if spec.link_data is not None:
        from audit.replay.synthdata import install_layout

        install_layout(spec.link_data, run_dir)
    log_path = run_dir / f"train_seed{seed}.log"
    run_id = f"seed_{seed}"
    cmd = torchrun_command(spec, run_id)
    env = {**os.environ, **spec.env, "SEED": str(seed), "RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
    if spec.smoke:
        env["GOLF_REPLAY_OUT"] = str(run_dir / "ledgers")

    isolated, network = network_isolation() if spec.isolate_network else (False, "network not isolated: --network on")
    if spec.nnodes > 1 and isolated:
        isolated, network = False, "network not isolated: several nodes rendezvous over it"
    if isolated:
        cmd = ["unshare", "-rn", "sh", "-c", _LOOPBACK_UP, "sh"] + cmd
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the namespace's only interface

    start = time.monotonic()
    timed_out = False
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            with log_path.open("rb") as reader:
                while proc.poll() is None:
                    if time.monotonic() - start > spec.timeout_s:
                        timed_out = True
                        kill_tree(proc.pid)
                        break
                    if on_progress is not None:
                        _report_steps(reader, on_progress)
                    time.sleep(poll_s)
        except BaseException:  # Ctrl-C or an internal error: never leave the run behind
            kill_tree(proc.pid, grace_s=1.0)
            raise
        proc.wait()
    wall = time.monotonic() - start
    summary = parse_log_file(log_path)
    if summary.seed is None:
        summary.seed = seed
    return SeedRun(seed, str(run_dir), str(log_path), cmd, proc.returncode, timed_out, wall, network, summary)


def _report_steps(reader, on_progress: Callable[[int, int], None]) -> None:
    """Feed the newest `step:N/M` the run printed since the last call to the progress callback;
    a line still being written is left for the next call."""
    latest = None
    while line := reader.readline():
        if not line.endswith(b"\n"):
            reader.seek(-len(line), os.SEEK_CUR)
            break
        if match := _STEP.match(line.decode(errors="replace")):
            latest = (int(match[1]), int(match[2]))
    if latest is not None:
        on_progress(*latest)
