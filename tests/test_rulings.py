"""Dated rulings (audit/rulings.py), STAT-1 in the static audit (PG016) and `golf validate --against
auto`: the same finding before and after a ruling's date, significance against the record of the
submission's day in a synthetic repository (tests/synthetic_repo.py)."""

import datetime as dt
import json

import pytest
import synthetic_repo

from audit.cli import audit_static
from audit.finding import Finding
from audit.rulings import (RULINGS, apply_rulings, rulings_at, rulings_of, stat1_severity, stat1_variants_at,
                           submission_date)
from audit.static.rules.pg113_smear_across_documents import SmearAcrossDocuments
from golf.cli import main

D = dt.date
SMEAR_WITHOUT_MASK = SmearAcrossDocuments.INVALID[0]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return synthetic_repo.build(tmp_path_factory.mktemp("golf") / "repo")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ("GOLF_REPO", "GOLF_RECORD", "GOLF_SUBMISSION_DATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _finding(code="PG113", severity="warning") -> Finding:
    return Finding(code=code, rule="DOC-1", severity=severity, confidence="medium", path="train_gpt.py", line=3,
                   col=1, message="smear without a BOS mask")


def test_submission_date_precedence(monkeypatch):
    meta = {"date": "2026-04-20T10:00:00Z"}
    assert submission_date("2026-04-16_Smear", meta, D(2026, 5, 1)) == (D(2026, 4, 16), "folder name 2026-04-16_Smear")
    assert submission_date("pr1667", meta, D(2026, 5, 1))[0] == D(2026, 4, 20)
    assert submission_date("pr1667", {"date": "soon"}, "2026-05-01") == (D(2026, 5, 1), "the date given")
    monkeypatch.setenv("GOLF_SUBMISSION_DATE", "2026-04-30")
    assert submission_date("pr1667", None) == (D(2026, 4, 30), "the date given")
    monkeypatch.delenv("GOLF_SUBMISSION_DATE")
    assert submission_date("2026-13-45_bad", None) == (None, "unknown")


def test_doc1_severity_follows_the_date():
    before, = apply_rulings([_finding()], D(2026, 4, 16), "folder name")
    after, = apply_rulings([_finding()], D(2026, 4, 28), "folder name")
    unknown, = apply_rulings([_finding()], None, "unknown")
    assert (before.severity, after.severity, unknown.severity) == ("note", "warning", "warning")
    assert "DOC-1" in before.message and "enforced from 2026-04-27 (cocohearts on #1797)" in before.message
    assert "dated 2026-04-16 (folder name), before it: note" in before.message
    assert "dated 2026-04-28 (folder name): warning" in after.message
    assert "date is unknown" in unknown.message


def test_retroactive_rulings_and_other_codes_keep_their_severity():
    calib = Finding(code="PG111", rule="CALIB-1", severity="error", confidence="high", path="", line=0, col=0,
                    message="calibrates on validation tokens")
    other = _finding(code="PG101", severity="error")
    assert apply_rulings([calib, other], D(2026, 3, 1), "folder name") == [calib, other]
    assert next(r for r in RULINGS if "PG111" in r.codes).retroactive


def test_rulings_at_a_date_for_reports():
    assert [r.rule for r in rulings_at(D(2026, 3, 19))] == ["STAT-1"]
    assert {r.rule for r in rulings_at(D(2026, 4, 27))} == {"STAT-1", "CALIB-1", "TTT-2", "DOC-1"}
    assert [r.since for r in rulings_at(D(2026, 5, 1), rule="STAT-1")] == [D(2026, 3, 18), D(2026, 4, 28)]
    assert [r.rule for r in rulings_of("PG113")] == ["DOC-1"] and len(rulings_of("STAT-1")) == 2


@pytest.mark.parametrize("folder,severity", [("2026-04-16_SmearNoMask", "note"), ("2026-04-28_SmearNoMask", "warning")])
def test_the_same_submission_before_and_after_the_doc1_ruling(tmp_path, folder, severity):
    path = tmp_path / folder
    path.mkdir()
    (path / "train_gpt.py").write_text(SMEAR_WITHOUT_MASK)
    findings = [f for f in audit_static(str(path)).findings if f.code == "PG113"]
    assert [f.severity for f in findings] == [severity]
    assert "cocohearts on #1797" in findings[0].message


@pytest.mark.parametrize("passed,date,severity", [
    ({"readme": True, "frontier": True}, D(2026, 4, 29), "note"),
    ({"readme": False, "frontier": True}, D(2026, 4, 29), "warning"),
    ({"readme": False, "frontier": True}, D(2026, 3, 25), "warning"),  # README alone in force, D1
    ({"readme": False, "frontier": False}, D(2026, 3, 25), "warning"),  # merged records of then did (D1)
    ({"readme": False, "frontier": False}, D(2026, 4, 29), "error"),
    ({"readme": None, "frontier": None}, D(2026, 4, 29), None),
])
def test_stat1_severity_policy(passed, date, severity):
    assert stat1_severity(passed, date)[0] == severity
    assert stat1_variants_at(date) == (["readme"] if date < D(2026, 4, 28) else ["readme", "frontier"])


def _candidate(tmp_path, folder: str, seeds: dict[int, float], meta: dict | None = None):
    path = tmp_path / folder
    path.mkdir()
    (path / "train_gpt.py").write_text("print('candidate')\n")
    (path / "submission.json").write_text(json.dumps(meta or {"name": "Candidate", "author": "a",
                                                              "val_bpb": round(sum(seeds.values()) / len(seeds), 8)}))
    for seed, bpb in seeds.items():
        (path / f"train_seed{seed}.log").write_text(synthetic_repo.seed_log(seed, bpb))
    return path


def _stat1(path):
    report = audit_static(str(path))
    assert report.error is None, report.error
    return [f for f in report.findings if f.code == "PG016"]


CLEAR_WIN = {1: 1.1795, 2: 1.1805, 3: 1.1800}  # ~0.02 bpb better than Better (1.2000)
SMALL_WIN = {1: 1.1990, 2: 1.1996, 3: 1.1993}  # ~0.0007 bpb: p < 0.25 yes, 0.005 nats no
NO_WIN = {1: 1.1990, 2: 1.2020, 3: 1.2010}


@pytest.mark.parametrize("seeds,severity,phrase", [
    (CLEAR_WIN, "note", "passes the README's 0.005 nats at p < 0.01 and p < 0.25"),
    (SMALL_WIN, "warning", "fails the README rule, the only one in force on 2026-03-22"),
    (NO_WIN, "warning", "is not an improvement even at p < 0.25"),  # before the frontier practice
])
def test_stat1_against_the_record_of_the_day(repo, tmp_path, monkeypatch, seeds, severity, phrase):
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    found, = _stat1(_candidate(tmp_path, "2026-03-22_Candidate", seeds))
    assert found.severity == severity and phrase in found.message
    assert "#5 2026-03-19_Better, merged 2026-03-20" in found.message  # the record standing on 2026-03-22
    assert "0.005 nats at p < 0.01 (README) (in force)" in found.evidence
    assert "p < 0.25 (frontier practice) (not yet in force)" in found.evidence


def test_stat1_after_the_frontier_practice(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    found, = _stat1(_candidate(tmp_path, "2026-04-29_Candidate", {1: 1.1480, 2: 1.1484, 3: 1.1482}))
    assert found.severity == "warning" and "passes p < 0.25 (in force on 2026-04-29)" in found.message
    assert "#9 2026-03-24_Best" in found.message  # its support folder gives it 3 seeds: a Welch test
    assert "welch" in found.evidence and "(frontier practice) (in force)" in found.evidence


def test_stat1_failing_every_rule_in_force_is_an_error(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    found, = _stat1(_candidate(tmp_path, "2026-04-29_Candidate", NO_WIN))
    assert found.severity == "error" and "fails both rules in force on 2026-04-29" in found.message


def test_stat1_needs_a_record(repo, tmp_path, monkeypatch):
    path = _candidate(tmp_path, "2026-03-22_Candidate", NO_WIN)
    assert _stat1(path) == []  # no repository, no record given: nothing said
    monkeypatch.setenv("GOLF_RECORD", "1.2030")
    found, = _stat1(path)
    assert found.severity == "warning" and "GOLF_RECORD=1.203" in found.message
    monkeypatch.setenv("GOLF_RECORD", "fast")
    assert "GOLF_RECORD='fast': expected a val_bpb number" in audit_static(str(path)).error
    monkeypatch.delenv("GOLF_RECORD")
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    assert _stat1(_candidate(tmp_path, "2026-03-17_Early", NO_WIN)) == []  # nothing merged before it


def test_stat1_skips_non_records_and_notes_a_single_seed(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    meta = {"name": "Non-record: idea", "author": "a", "val_bpb": 1.25}
    assert _stat1(_candidate(tmp_path, "2026-03-22_Idea", NO_WIN, meta)) == []
    support = {"name": "3 more seeds of #5", "author": "a", "val_bpb": 1.2, "submission_type": "record_support"}
    assert _stat1(_candidate(tmp_path, "2026-04-29_Support", NO_WIN, support)) == []  # no record claim of its own
    found, = _stat1(_candidate(tmp_path, "2026-03-22_One", {1: 1.15}))
    assert found.severity == "note" and "needs at least 2 seeds" in found.message


def _validate_folder(tmp_path, folder="2026-03-22_Candidate", seeds=CLEAR_WIN):
    path = _candidate(tmp_path, folder, seeds, {"name": "c", "author": "a", "val_bpb": round(
        sum(seeds.values()) / len(seeds), 8), "seeds": list(seeds)})
    return path


def test_validate_against_auto(repo, tmp_path, capsys):
    path = _validate_folder(tmp_path)
    rc = main(["validate", str(path), "--reuse-logs", "--against", "auto", "--repo", repo.git_dir, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report["findings"]
    record = report["stats"]["record"]
    assert record["label"].startswith("#5 2026-03-19_Better (merged 2026-03-20; submission dated 2026-03-22")
    assert record["n"] == 3 and record["mean_val_bpb"] == pytest.approx(1.2)
    stat1 = [f for f in report["findings"] if f["code"] == "PG911"]
    assert [f["severity"] for f in stat1] == ["note"]


def test_validate_against_auto_reads_golf_repo_and_fails_on_worse(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GOLF_REPO", repo.git_dir)
    path = _validate_folder(tmp_path, "2026-04-29_Candidate", NO_WIN)
    assert main(["validate", str(path), "--reuse-logs", "--against", "auto", "--format", "json"]) == 1
    stat1 = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "PG911"]
    assert [f["severity"] for f in stat1] == ["error"] and "fails both rules in force" in stat1[0]["message"]


def test_validate_against_auto_needs_a_repository(tmp_path, repo, capsys):
    path = _validate_folder(tmp_path)
    assert main(["validate", str(path), "--reuse-logs", "--against", "auto"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--against auto needs a clone" in err and "GOLF_REPO" in err
    early = _validate_folder(tmp_path, "2026-03-17_Early")
    assert main(["validate", str(early), "--reuse-logs", "--against", "auto", "--repo", repo.git_dir]) == 2
    assert "no record merged before 2026-03-17" in capsys.readouterr().err


def test_golf_explain_shows_the_dated_rulings(capsys):
    assert main(["explain", "PG113", "--no-snippets"]) == 0
    out = capsys.readouterr().out
    assert "from 2026-04-27" in out and "cocohearts on #1797" in out and "gets a note" in out
    assert main(["explain", "PG911"]) == 0
    out = capsys.readouterr().out
    assert "from 2026-03-18" in out and "from 2026-04-28" in out
