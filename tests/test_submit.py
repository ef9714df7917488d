"""`golf submit`: the built folder (bundled train_gpt.py, seed log, submission.json, README), its
audit, its standalone re-run from inside the folder, and refusals that leave nothing on disk."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit.runner.logs import parse_log_file
from golf.cli import main
from golf.data.corpus import build_demo

pytestmark = pytest.mark.slow  # tiny training runs: submit build, standalone re-run, submit CLI

# tiny settings on top of the smoke preset: 2 steps, non-overlapping eval windows, 2 TTT chunks of 1 epoch
TINY = {"ITERATIONS": "2", "WARMDOWN_ITERS": "1", "TTT_EPOCHS": "1", "EVAL_STRIDE": "128", "TTT_CHUNK_TOKENS": "4096"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("submit") / "data"
    build_demo(out, vocab_size=512, max_chars=400_000)
    return out


def _submit(data: Path, out: Path, *extra: str) -> int:
    argv = ["submit", "--name", "tiny", "--data", str(data), "--out", str(out), "--date", "2026-01-02",
            "--author", "Tester", "--github-id", "tester", "--no-replay", "--timeout", "500"]
    for key, value in TINY.items():
        argv += ["--env", f"{key}={value}"]
    return main(argv + list(extra))


def test_the_built_folder_reproduces_its_run_standalone(data, tmp_path):
    from golf.commands.submit import _build, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--name", "tiny", "--data", str(data), "--github-id", "tester", "--no-replay",
                              "--timeout", "500"])
    folder = tmp_path / "2026-01-02_tiny"
    folder.mkdir()
    verdict = _build(args, folder, tmp_path / "work", data, [1337], dict(TINY), "Tester", "2026-01-02")
    assert verdict in ("PASS", "WARN", "FAIL")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "submission.json", "train_gpt.py",
                                                         "train_seed1337.log"]
    assert "import golf" not in (folder / "train_gpt.py").read_text()
    meta = json.loads((folder / "submission.json").read_text())
    assert (meta["name"], meta["author"], meta["github_id"], meta["date"]) == ("tiny", "Tester", "tester", "2026-01-02")
    assert meta["seeds"] == [1337] and meta["track"] == "non-record"
    seed = meta["seed_results"]["1337"]
    assert meta["val_bpb"] == seed["val_bpb"] and seed["steps"] == 2
    assert meta["bytes_code"] == (folder / "train_gpt.py").stat().st_size
    assert meta["bytes_total"] == seed["artifact_bytes"] == meta["bytes_code"] + seed["model_bytes"]
    logged = parse_log_file(folder / "train_seed1337.log")  # the seed log: the bundle's own source dump
    assert (logged.seed, logged.val_bpb, logged.artifact_bytes) == (1337, pytest.approx(seed["val_bpb"], abs=1e-8),
                                                                    seed["artifact_bytes"])
    assert logged.code_hash is not None
    readme = (folder / "README.md").read_text()
    assert f"| 1337 | {seed['val_bpb']:.8f} |" in readme and f"`golf audit` verdict: **{verdict}**" in readme

    # the folder's train_gpt.py, run standalone from inside it, reproduces the submitted seed
    standalone = tmp_path / "standalone"
    env = {**os.environ, **TINY, "DATA_PATH": str(data), "SEED": "1337", "OUT_DIR": str(standalone)}
    env.pop("PRESET", None)  # no CUDA here: the smoke preset by default
    proc = subprocess.run([sys.executable, "train_gpt.py"], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rerun = json.loads((standalone / "run.json").read_text())
    assert rerun["config"]["num_layers"] == 3  # smoke
    assert rerun["val_bpb"] == pytest.approx(seed["val_bpb"], abs=1e-6)
    assert rerun["code_bytes"] == meta["bytes_code"]



def test_submit_writes_the_folder_only_when_the_audit_passes(data, tmp_path, capsys):
    out = tmp_path / "submissions"
    rc = _submit(data, out)
    err = capsys.readouterr().err
    assert rc == 0, err  # the reference must audit without error-severity findings
    folder = out / "2026-01-02_tiny"
    assert sorted(p.name for p in out.iterdir()) == ["2026-01-02_tiny"]  # no build leftovers
    assert main(["audit", str(folder)]) == 0, capsys.readouterr().err


def test_a_failing_seed_leaves_nothing_on_disk(data, tmp_path, capsys):
    out = tmp_path / "submissions"
    assert _submit(data, out, "--timeout", "2") == 2  # killed at its wallclock limit
    err = capsys.readouterr().err
    assert "seed 1337: train_gpt.py failed (killed at 2 s)" in err and "nothing was written" in err
    assert not out.exists()  # not even the parent folder it had to create


@pytest.mark.parametrize("argv, message", [
    (["submit", "--name", "../escape"], "--name"),
    (["submit", "--name", "x", "--data", "/no/such/data"], "not found"),
    (["submit", "--name", "x", "--seeds", "1,1"], "distinct"),
    (["submit", "--name", "x", "--env", "ITERATIONS=many"], "ITERATIONS"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("golf: error: ") and message in err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
