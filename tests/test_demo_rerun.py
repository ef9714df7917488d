"""`make demo` typed twice: the Makefile's train step (its exact arguments, on a tiny data folder and
a few steps) runs twice in a row, and `golf train --out` still refuses a folder the user named
unless it holds an earlier run and --replace is given."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from golf.data.corpus import build_demo

REPO = Path(__file__).resolve().parents[1]
TINY = {"ITERATIONS": "2", "WARMDOWN_ITERS": "1", "WARMUP_STEPS": "0", "TTT_ENABLED": "0", "OMP_NUM_THREADS": "1"}


def demo_train_step(runs: Path, data: Path) -> list[str]:
    """The `golf train` line of the Makefile's demo target, with $(PY) and $(RUNS) filled in and the
    data folder pointed at `data`."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    line = next(l.strip() for l in recipe.splitlines() if " golf train " in l)
    line = line.replace("$(PY)", shlex.quote(sys.executable)).replace("$(RUNS)", str(runs))
    argv = shlex.split(line)
    argv[argv.index("--data") + 1] = str(data)
    return argv


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **TINY, "PYTHONPATH": str(REPO)}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_rerun") / "data"
    build_demo(out, vocab_size=512, max_chars=200_000)
    return out


@pytest.mark.slow
def test_the_demo_train_step_runs_twice(tiny_data, tmp_path):
    argv = demo_train_step(tmp_path, tiny_data)
    out = Path(argv[argv.index("--out") + 1])
    first = _run(argv)
    assert first.returncode == 0, first.stderr[-2000:]
    (out / "stale.txt").write_text("left by the first run")
    second = _run(argv)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"replacing the earlier run in {out}" in second.stderr
    assert json.loads((out / "run.json").read_text())["steps"] == 2
    assert not (out / "stale.txt").exists()  # replaced, not merged into


def test_out_is_still_refused_without_replace_or_without_an_earlier_run(tiny_data, tmp_path):
    base = [sys.executable, "-m", "golf", "train", "--preset", "smoke", "--data", str(tiny_data)]
    named = tmp_path / "mine"
    named.mkdir()
    (named / "notes.md").write_text("my notes")
    for extra in ([], ["--replace"]):
        done = _run(base + ["--out", str(named)] + extra)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--replace replaces only a run folder" in done.stderr
    (named / "train.log").write_text("an earlier run's log")
    done = _run(base + ["--out", str(named)])
    assert done.returncode == 2 and "already exists and is not empty" in done.stderr
    assert sorted(p.name for p in named.iterdir()) == ["notes.md", "train.log"]
    assert (named / "notes.md").read_text() == "my notes"
