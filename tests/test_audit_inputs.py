"""Every bad input to `golf audit` is exit 2 with one clear line on stderr, no traceback, nothing
written; a file whose import would write proves the audit never runs submission code."""

import json
import shutil
from pathlib import Path

import pytest

from audit.submission import MAX_TEXT_BYTES
from golf.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "static"


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("golf: error: ") and "Traceback" not in captured.err
    assert captured.out == ""
    return lines[0]


def _make(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    folder.mkdir()
    if case == "syntax_error":
        (folder / "train_gpt.py").write_text("import torch\n\ndef main(:\n    pass\n")
    elif case == "binary":
        (folder / "train_gpt.py").write_bytes(b"import torch\n\x00\x01\x02\xff" * 10)
    elif case == "not_utf8":
        (folder / "train_gpt.py").write_bytes("print('café')\n".encode("latin-1"))
    elif case == "no_python":
        (folder / "README.md").write_text("# only a readme\n")
    elif case == "bad_json":
        (folder / "train_gpt.py").write_text("print(1)\n")
        (folder / "submission.json").write_text('{"name": "x", "val_bpb": 1.1,,}')
    elif case == "parent_of_records":
        for name in ("2026-04-01_A", "2026-04-02_B"):
            (folder / name).mkdir()
            (folder / name / "train_gpt.py").write_text("print(1)\n")
    elif case == "two_entries":
        (folder / "model.py").write_text("A = 1\n")
        (folder / "utils.py").write_text("B = 2\n")
    return folder


@pytest.mark.parametrize("case,expected", [
    ("missing", "no such file or folder"),
    ("empty", "empty folder"),
    ("no_python", "no Python file"),
    ("syntax_error", "train_gpt.py:3: syntax error"),
    ("binary", "binary file"),
    ("not_utf8", "not UTF-8"),
    ("bad_json", "submission.json: malformed JSON at line 1"),
    ("two_entries", "several candidate entry files"),
    ("parent_of_records", "holds 2 submission folder(s) (2026-04-01_A, 2026-04-02_B)"),
])
def test_bad_folder_inputs(tmp_path, capsys, case, expected):
    path = tmp_path / "missing" if case == "missing" else _make(tmp_path, case)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["audit", str(path), "--format", "json"]) == 2
    assert expected in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written or removed


def test_file_over_the_size_limit(tmp_path, capsys):
    big = tmp_path / "train_gpt.py"
    with open(big, "wb") as f:  # sparse: the size is checked before anything is read
        f.truncate(MAX_TEXT_BYTES + 1)
    assert main(["audit", str(big)]) == 2
    assert "over the 20,971,520-byte limit" in _one_error_line(capsys)


def test_binary_file_given_as_path(tmp_path, capsys):
    blob = tmp_path / "final_model.ptz"
    blob.write_bytes(bytes(range(256)) * 4)
    assert main(["audit", str(blob)]) == 2
    assert "binary file" in _one_error_line(capsys)


def test_usage_errors(tmp_path, capsys):
    assert main(["audit", str(FIXTURES / "legal_record"), str(FIXTURES / "helper_native"), "--log", "x.log"]) == 2
    assert "--log applies to one PATH" in _one_error_line(capsys)
    assert main(["audit", str(FIXTURES / "legal_record"), "--format", "yaml"]) == 2
    assert "invalid choice" in _one_error_line(capsys)


def test_several_paths_report_each_error_and_exit_2(tmp_path, capsys):
    bad = _make(tmp_path, "syntax_error")
    assert main(["audit", str(FIXTURES / "legal_record"), str(bad), "--format", "json", "--jobs", "1"]) == 2
    captured = capsys.readouterr()
    reports = json.loads(captured.out)["reports"]
    assert [r["verdict"] for r in reports] == ["PASS", "ERROR"]
    assert "syntax error" in reports[1]["error"]
    assert captured.err.count("golf: error:") == 1


def test_the_audit_never_executes_submission_code(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "never_executed"
    shutil.copytree(FIXTURES / "never_executed", folder)
    monkeypatch.chdir(folder)  # the files it would write are relative to the working directory
    assert main(["audit", str(folder), "--format", "json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert not list(tmp_path.rglob("PWNED*"))
    # and yet the audit read all three files (helper module and exec(open()) target inlined)
    assert report["stats"]["files"] == ["train_gpt.py", "sidecar.py", "stage2.py"]
