"""The launcher: torchrun per seed in its own run folder, process-tree kill at the wallclock limit."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from audit.runner.checks import run_findings
from audit.runner.launch import LaunchSpec, kill_tree, launch_seed, torchrun_command
from golf.errors import GolfError

FIXTURES = Path(__file__).parent / "fixtures" / "runner"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_torchrun_command_single_and_multi_node(tmp_path):
    single = torchrun_command(LaunchSpec(tmp_path, nproc=8), "seed_1")
    assert single[1:] == ["-m", "torch.distributed.run", "--nproc_per_node=8", "--standalone", "train_gpt.py"]
    multi = torchrun_command(LaunchSpec(tmp_path, nproc=8, nnodes=2, node_rank=1, rdzv_endpoint="h:29500"), "s")
    assert "--nnodes=2" in multi and "--rdzv-endpoint=h:29500" in multi and "--standalone" not in multi
    with pytest.raises(GolfError):
        torchrun_command(LaunchSpec(tmp_path, nnodes=2), "s")


def test_kill_tree_reaches_a_child_in_its_own_session():
    # like torchrun: the parent starts its worker with start_new_session=True, out of killpg's reach
    code = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True); "
            "print(c.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    child = int(parent.stdout.readline())
    assert os.getpgid(child) != os.getpgid(parent.pid)
    signalled = kill_tree(parent.pid, grace_s=2.0)
    parent.wait(timeout=10)
    assert {parent.pid, child} <= set(signalled)
    assert _gone(parent.pid) and _gone(child)


@pytest.mark.slow
def test_a_seed_over_its_limit_is_killed_with_its_process_tree_and_reported(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    shutil.copy(FIXTURES / "sleeper_train_gpt.py", folder / "train_gpt.py")
    (folder / "old_seed.log").write_text("not this run's\n")
    result = launch_seed(LaunchSpec(folder, timeout_s=12), 7, tmp_path / "runs")
    assert result.timed_out
    run_dir = Path(result.run_dir)
    assert run_dir == tmp_path / "runs" / "seed_7" and not (run_dir / "old_seed.log").exists()
    script_pid, child_pid = map(int, (run_dir / "pids.txt").read_text().split())
    deadline = time.monotonic() + 10  # orphans are reaped by init asynchronously
    while not (_gone(script_pid) and _gone(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(script_pid) and _gone(child_pid)
    findings = run_findings(7, result.summary, result.log, timed_out=True, timeout_s=12)
    assert [(f.rule, f.severity) for f in findings] == [("BUD-T", "error")]
    assert "killed at its 12 s wallclock limit during training" in findings[0].message
