"""`golf validate`: re-used and freshly run seed logs, statistics, findings, JSON, plot, exit codes."""

import json
import shutil
from pathlib import Path

import pytest

from golf.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "runner"


def _log(seed: int, bpb: float, code: str = "import os\nprint('same code')", seq_len: int = 1024) -> str:
    """A record-style seed log (code dump, preamble, wallclock stop, sizes, scores)."""
    return (
        f"{code}\n{'=' * 100}\n"
        f"train_seq_len:{seq_len} iterations:20000\nseed:{seed}\n"
        f"step:6000/20000 val_loss:{bpb * 1.69 + 0.01:.4f} val_bpb:{bpb + 0.006:.4f} train_time:590012ms step_avg:98.3ms\n"
        "stopping_early: wallclock_cap train_time:590012ms step:6000/20000\n"
        "Total submission size int6+zstd: 15500000 bytes\n"
        f"final_int6_sliding_window val_loss:{bpb * 1.69:.4f} val_bpb:{bpb:.4f} stride:64 eval_time:80000ms\n"
        f"final_int6_sliding_window_exact val_loss:{bpb * 1.69:.8f} val_bpb:{bpb:.8f}\n"
    )


SEEDS = {1337: 1.1180, 42: 1.1186, 2025: 1.1176}


def _folder(tmp_path: Path, meta: dict | None, logs: dict[int, str], entry: bool = True) -> Path:
    folder = tmp_path / "sub"
    folder.mkdir()
    if entry:
        (folder / "train_gpt.py").write_text("print('never run with --reuse-logs')\n")
    if meta is not None:
        (folder / "submission.json").write_text(json.dumps(meta))
    for seed, text in logs.items():
        (folder / f"train_seed{seed}.log").write_text(text)
    return folder


def _meta(**overrides) -> dict:
    meta = {"name": "t", "author": "a", "github_id": "a", "val_bpb": round(sum(SEEDS.values()) / 3, 8),
            "seeds": list(SEEDS), "seed_results": {str(s): {"val_bpb": b} for s, b in SEEDS.items()},
            "bytes_total": 15500000}
    meta.update(overrides)
    return meta


def test_reuse_logs_against_a_record_folder_json_and_plot(tmp_path, capsys):
    folder = _folder(tmp_path, _meta(), {s: _log(s, b) for s, b in SEEDS.items()})
    record = tmp_path / "record"
    record.mkdir()
    (record / "submission.json").write_text(json.dumps(
        {"val_bpb": 1.1228, "seed_results": {"1": {"val_bpb": 1.1225}, "2": {"val_bpb": 1.1232}, "3": {"val_bpb": 1.1227}}}))
    plot = tmp_path / "seeds.png"
    rc = main(["validate", str(folder), "--reuse-logs", "--against", str(record), "--plot", str(plot), "--format", "json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert rc == 0 and report["verdict"] == "PASS", report["findings"]
    stats = report["stats"]
    assert stats["n"] == 3 and stats["mean_val_bpb"] == pytest.approx(1.1180667, abs=1e-6)
    assert stats["std_val_bpb"] == pytest.approx(0.0005033, abs=1e-6)
    assert stats["nats_per_bpb"] == pytest.approx(1.69)
    assert [t["test"] for t in stats["significance"]] == ["welch", "welch"]
    assert all(t["passed"] for t in stats["significance"])
    assert [f["rule"] for f in report["findings"]] == ["STAT-1"]  # the note that it passed
    assert [r["seed"] for r in stats["seeds"]] == [1337, 2025, 42]  # log names in sorted order
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean val_bpb 1.11806667" in out.err and "verdict: PASS" in out.err


def test_logs_that_contradict_submission_json_get_findings(tmp_path, capsys):
    meta = _meta(val_bpb=1.1100, seeds=[1337, 42, 7], bytes_total=15000000)
    meta["seed_results"]["42"]["val_bpb"] = 1.1111
    folder = _folder(tmp_path, meta, {s: _log(s, b) for s, b in SEEDS.items()})
    rc = main(["validate", str(folder), "--reuse-logs", "--format", "json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert rc == 1
    got = {(f["code"], f["rule"]) for f in findings}
    assert got == {("PG909", "SEED-1"), ("PG910", "STAT-2"), ("PG912", "SIZE-1")}
    messages = " ".join(f["message"] for f in findings)
    assert "seed 42: submission.json says val_bpb 1.1111" in messages and "[7, 42, 1337]" in messages


def test_mixed_configs_few_seeds_and_a_worse_candidate(tmp_path, capsys):
    logs = {1337: _log(1337, 1.20), 42: _log(42, 1.21, code="import os\nprint('other code')", seq_len=2048)}
    folder = _folder(tmp_path, None, logs)
    rc = main(["validate", str(folder), "--reuse-logs", "--against", "1.1147", "--format", "json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert rc == 1
    codes = [(f["code"], f["rule"], f["severity"]) for f in findings]
    assert ("PG902", "FMT-1", "error") in codes  # no submission.json
    assert ("PG907", "STAT-2", "error") in codes  # 2 seeds
    assert [c for c in codes if c[0] == "PG908"] == [("PG908", "STAT-2", "error")] * 2  # code and config
    assert ("PG911", "STAT-1", "error") in codes  # worse than the record


def test_missing_files_are_findings_not_crashes(tmp_path, capsys):
    folder = _folder(tmp_path, None, {}, entry=False)
    assert main(["validate", str(folder), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {(f["code"], f["rule"]) for f in report["findings"]} == {
        ("PG901", "FMT-1"), ("PG902", "FMT-1"), ("PG907", "STAT-2")}
    (folder / "submission.json").write_text("{not json")
    assert main(["validate", str(folder), "--reuse-logs"]) == 1
    assert "submission.json is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["validate", "/no/such/folder"],
    ["validate", ".", "--seeds", "1,x"],
    ["validate", ".", "--against", "/no/such/record", "--reuse-logs"],
    ["validate", ".", "--env", "NOEQUALS"],
])
def test_bad_input_is_exit_2(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("golf: error: ")


@pytest.mark.slow
def test_runs_seeds_under_torchrun_with_two_processes(tmp_path, capsys):
    folder = tmp_path / "sub"
    folder.mkdir()
    shutil.copy(FIXTURES / "seeded_train_gpt.py", folder / "train_gpt.py")
    (folder / "submission.json").write_text(json.dumps({"name": "t", "author": "a", "val_bpb": 1.2}))
    runs = tmp_path / "runs"
    rc = main(["validate", str(folder), "--seeds", "5,6", "--nproc", "2", "--runs", str(runs),
               "--timeout", "120", "--format", "json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert rc == 1  # two seeds only
    assert [f["rule"] for f in report["findings"]] == ["STAT-2"]
    rows = report["stats"]["seeds"]
    assert [(r["seed"], r["status"]) for r in rows] == [(5, "ok"), (6, "ok")]
    for row in rows:
        assert Path(row["log"]) == runs / f"seed_{row['seed']}" / f"train_seed{row['seed']}.log"
        assert "world_size:2" in Path(row["log"]).read_text()  # both processes joined the gloo group
        assert row["artifact_bytes"] == 123456 and row["train_seconds"] == 1.2
    assert rows[0]["val_bpb"] != rows[1]["val_bpb"]  # the SEED env var reached the script
    assert report["stats"]["network"].startswith("network ")
    assert "seed 5" in out.err and "train_seed6.log" in out.err


def _records_log(seed: int, bpb: float, stop_step: int, matrix_lr: str = "0.04") -> str:
    """A records-format log that prints no per-step lines: preamble, wallclock stop, sizes, score."""
    return (
        f"num_layers:11 model_dim:512 matrix_lr:{matrix_lr} train_seq_len:2048 iterations:20000\n"
        f"seed:{seed}\n"
        f"late_qat:enabled step:{stop_step - 400} scale:0.1500\n"
        f"stopping_early: wallclock_cap train_time:{589000 + stop_step // 10}ms step:{stop_step}/20000\n"
        "peak memory allocated: 20000 MiB reserved: 20500 MiB\n"
        "Total submission size int6+zstd: 15500000 bytes\n"
        f"final_int6_sliding_window_exact val_loss:{bpb * 1.69:.8f} val_bpb:{bpb:.8f}\n"
    )


def test_seeds_stopped_at_different_steps_are_one_configuration(tmp_path, capsys):
    steps = {1337: 6025, 42: 5990, 2025: 6011}  # the wallclock cap stops each seed at its own step
    folder = _folder(tmp_path, _meta(), {s: _records_log(s, b, steps[s]) for s, b in SEEDS.items()})
    assert main(["validate", str(folder), "--reuse-logs", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not [f for f in report["findings"] if f["code"] == "PG908"], report["findings"]
    assert sorted(r["steps"] for r in report["stats"]["seeds"]) == [5990, 6011, 6025]


def test_seeds_with_a_different_hyperparameter_are_not_one_configuration(tmp_path, capsys):
    logs = {s: _records_log(s, b, 6000, matrix_lr="0.05" if s == 42 else "0.04") for s, b in SEEDS.items()}
    folder = _folder(tmp_path, _meta(), logs)
    assert main(["validate", str(folder), "--reuse-logs", "--format", "json"]) == 1
    findings = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "PG908"]
    assert len(findings) == 1 and "(matrix_lr)" in findings[0]["message"]
    assert "train_seed42.log=0.05" in findings[0]["evidence"]
