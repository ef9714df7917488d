"""The front-end rules on realistic folders: the legal fixture, and that fixture with one
violation written in, audited end to end through normalisation and the CLI."""

import json
import shutil
from pathlib import Path

import pytest

from golf.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "static"
LEGAL = FIXTURES / "legal_record"

# (name, file, old text, new text, expected code)
MUTATIONS = [
    ("download", "train_gpt.py", "    sp = spm.SentencePieceProcessor(",
     "    from huggingface_hub import hf_hub_download\n"
     "    args.tokenizer_path = hf_hub_download('someone/tok', 'fineweb_1024_bpe.model')\n"
     "    sp = spm.SentencePieceProcessor(", "PG003"),
    ("force_stop", "train_gpt.py", "        if elapsed_ms >= max_wallclock_ms:",
     "        stop_after_step = int(os.environ.get('FORCE_STOP_STEP', '0')) or None\n"
     "        if stop_after_step is not None and step >= stop_after_step:\n            break\n"
     "        if elapsed_ms >= max_wallclock_ms:", None),
    ("double_space", "train_gpt.py", "            piece = piece[1:]\n        base_bytes[token_id] = len(piece.encode(\"utf-8\"))",
     "            base_bytes[token_id] = len(piece[1:].encode(\"utf-8\")) + 1\n            continue\n"
     "        base_bytes[token_id] = len(piece.encode(\"utf-8\"))", "PG007"),
    ("over_cap", "train_seed2.log", "stopping_early: wallclock_cap train_time:590012ms",
     "stopping_early: wallclock_cap train_time:601153ms", "PG004"),
    ("over_size", "train_seed3.log", "Serialized model int6+zstd: 15860000 bytes\nCode size: 8345 bytes\n"
     "Total submission size int6+zstd: 15868345 bytes", "Serialized model int6+zstd: 16034287 bytes\n"
     "Code size: 8345 bytes\nTotal submission size int6+zstd: 16042632 bytes", "PG001"),
    ("claims_better", "submission.json", '"val_bpb": 1.1203', '"val_bpb": 1.0950', "PG010"),
]


def _mutate(tmp_path, name, file, old, new) -> Path:
    folder = tmp_path / name
    shutil.copytree(LEGAL, folder)
    text = (folder / file).read_text()
    assert old in text, (name, old)
    (folder / file).write_text(text.replace(old, new, 1))
    return folder


def _audit(capsys, folder: Path) -> tuple[int, dict]:
    rc = main(["audit", str(folder), "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)


def test_the_legal_fixture_passes(capsys):
    rc, report = _audit(capsys, LEGAL)
    assert (rc, report["verdict"], report["findings"]) == (0, "PASS", [])


@pytest.mark.parametrize("name,file,old,new,code", [m for m in MUTATIONS if m[4]], ids=[m[0] for m in MUTATIONS if m[4]])
def test_one_violation_fails_with_its_rule(tmp_path, capsys, name, file, old, new, code):
    rc, report = _audit(capsys, _mutate(tmp_path, name, file, old, new))
    hits = [f for f in report["findings"] if f["code"] == code and f["severity"] == "error"]
    assert rc == 1 and report["verdict"] == "FAIL" and hits, report["findings"]


def test_force_stop_is_off_by_default_and_an_error_when_the_run_sets_it(tmp_path, capsys):
    name, file, old, new, _ = MUTATIONS[1]
    folder = _mutate(tmp_path, name, file, old, new)
    rc, report = _audit(capsys, folder)
    notes = [f for f in report["findings"] if f["code"] == "PG004"]
    assert rc == 0 and [f["severity"] for f in notes] == ["note"]
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("SEED=1337 ", "SEED=1337 FORCE_STOP_STEP=4945 "))
    rc, report = _audit(capsys, folder)
    errors = [f for f in report["findings"] if f["code"] == "PG004" and f["severity"] == "error"]
    assert rc == 1 and "FORCE_STOP_STEP=4945" in errors[0]["message"]


def test_helpers_native_code_and_totals(capsys):
    rc, report = _audit(capsys, FIXTURES / "helper_native")
    (finding,) = [f for f in report["findings"] if f["code"] == "PG002"]
    assert rc == 0 and finding["severity"] == "warning" and finding["line"] == 4
    for fact in ("ngram_helper.py", "`g++`", "kernels/fused.cpp", "counted code 500 B", "all shipped code"):
        assert fact in finding["message"]


def test_a_shipped_model_plus_code_over_the_limit(tmp_path, capsys):
    folder = tmp_path / "shipped_model"
    shutil.copytree(LEGAL, folder)
    with open(folder / "final_model.int6.ptz", "wb") as f:  # sparse: only its size is read
        f.truncate(15_995_000)
    rc, report = _audit(capsys, folder)
    (finding,) = [f for f in report["findings"] if f["code"] == "PG001"]
    assert rc == 1 and finding["path"] == "final_model.int6.ptz" and "15,995,000" in finding["message"]
