"""`golf validate --smoke`: one seed of a CUDA-only submission at toy size on the CPU, through the replay's
boot module (CUDA emulated), shrunk environment and synthetic data; a run that breaks is PG920."""

import json
from pathlib import Path

import pytest

from golf.cli import main

CUDA_FIXTURES = Path(__file__).parent / "fixtures" / "replay_cuda"

pytestmark = pytest.mark.slow


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_REPLAY_CACHE", str(tmp_path / "cache"))


def cuda_submission(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    text = (CUDA_FIXTURES / name / "variant.py").read_text() + "\n\n" + (CUDA_FIXTURES / "_shared.py").read_text()
    (folder / "train_gpt.py").write_text(text)
    (folder / "submission.json").write_text(json.dumps({"name": name, "author": "t", "val_bpb": 1.2}))
    return folder


def test_a_cuda_only_submission_runs_end_to_end_at_toy_size(tmp_path, cache, capsys):
    folder = cuda_submission(tmp_path, "legal_ttt")
    rc = main(["validate", str(folder), "--smoke", "--runs", str(tmp_path / "runs"), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    [row] = report["stats"]["seeds"]
    assert report["stats"]["mode"] == "smoke" and row["seed"] == 1337
    assert row["status"] == "ok" and row["val_bpb"] is not None, row
    assert not [f for f in report["findings"] if f["code"] == "PG920"]
    assert rc == 0 and not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]
    run_dir = Path(row["run_dir"])
    assert (run_dir / "data" / "tokenizers" / "fineweb_384_bpe.model").exists()  # the vocabulary it names
    assert (run_dir / "ledgers" / "ledger-rank0.pkl").exists()  # it ran under the replay's boot module


def test_a_submission_that_breaks_is_a_pg920_with_its_error_line(tmp_path, cache, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(
        "import os\nimport torch\n"
        "assert torch.cuda.is_available(), 'CUDA is required'\n"
        "dim = int(os.environ.get('MODEL_DIM', 512))\n"
        "print(f'model_dim:{dim}')\n"
        "raise RuntimeError(f'broken after start-up at width {dim}')\n")
    rc = main(["validate", str(folder), "--smoke", "--runs", str(tmp_path / "runs"), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    [smoke] = [f for f in report["findings"] if f["code"] == "PG920"]
    assert rc == 1 and smoke["severity"] == "error"
    assert "RuntimeError: broken after start-up at width 64" in smoke["message"]  # shrunk from 512
    assert report["stats"]["seeds"][0]["shrink"]["MODEL_DIM"] == "512->64"


def test_smoke_and_reuse_logs_do_not_go_together(tmp_path, capsys):
    assert main(["validate", str(tmp_path), "--smoke", "--reuse-logs"]) == 2
    assert "--smoke runs the submission" in capsys.readouterr().err
