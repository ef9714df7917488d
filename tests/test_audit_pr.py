"""`golf audit --pr N` and `--staged` on a git repository the test builds (tests/git_pr_repo.py):
dated commits, a base branch that moves on after the PR branched, PR refs (open, docs-only,
merged), a bare mirror and a URL; the clone's work tree is never touched; the markdown comment."""

import json
from pathlib import Path

import pytest
from git_pr_repo import (BASE_RECORD, HEADER, ILLEGAL, ILLEGAL_LINE, ILLEGAL_MAIN, LATER, LEGAL, LEGAL_MAIN, MERGED,
                         TRACK, UNDATED, build_upstream, commit, folder_files, git, under)

from audit import pr as pulls
from golf.cli import main


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    return build_upstream(tmp_path_factory.mktemp("golf_pr") / "upstream")


def _snapshot(repo: Path) -> tuple:
    files = sorted((p.relative_to(repo).as_posix(), p.stat().st_mtime_ns)
                   for p in repo.rglob("*") if p.is_file() and ".git" not in p.relative_to(repo).parts)
    return (git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all"),  # a status that never refreshes the index git(repo, "rev-parse", "HEAD"),
            git(repo, "symbolic-ref", "HEAD"), (repo / ".git" / "index").stat().st_mtime_ns, files)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_pr_finds_exactly_its_folders_and_leaves_the_clone_untouched(upstream, capsys):
    before = _snapshot(upstream)
    assert main(["audit", "--pr", "7", "--repo", str(upstream), "--format", "json", "--jobs", "1"]) == 1
    reports = _json(capsys)["reports"]
    assert _snapshot(upstream) == before  # work tree, index, HEAD and every file's mtime
    assert [r["path"] for r in reports] == [LEGAL, ILLEGAL]  # not the root README, not the folder main added later
    assert reports[0]["verdict"] in ("PASS", "WARN") and reports[1]["verdict"] == "FAIL"
    data1 = [f for f in reports[1]["findings"] if f["rule"] == "DATA-1"]
    assert data1 and data1[0]["path"] == "train_gpt.py"
    assert (HEADER + ILLEGAL_MAIN).splitlines()[data1[0]["line"] - 1] == ILLEGAL_LINE
    pr = reports[1]["stats"]["pr"]
    assert pr["number"] == 7 and pr["merged"] is False and pr["date"] == "2026-04-02"  # the PR's first commit
    assert pr["title"] == "Record: tiny legal and tiny val training"
    assert pr["fork_point"] == git(upstream, "rev-list", "--max-parents=0", "HEAD")
    assert reports[1]["stats"]["root"] == ILLEGAL
    candidate = reports[1]["stats"]["review"]["candidate"]
    assert candidate["n"] == 3 and candidate["mean_val_bpb"] == pytest.approx(1.011)


def test_pr_annotations_point_at_the_files_of_the_repository(upstream, capsys):
    assert main(["audit", "--pr", "7", "--repo", str(upstream), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    line = (HEADER + ILLEGAL_MAIN).splitlines().index(ILLEGAL_LINE) + 1
    assert any(l.startswith(f"::error file={ILLEGAL}/train_gpt.py,line={line},") for l in lines)
    assert not any("golf-pr" in l for l in lines)  # no temporary path leaks into the report


def test_bare_mirror_and_url(upstream, tmp_path, capsys):
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(upstream), str(mirror))
    assert main(["audit", "--pr", "7", "--repo", str(mirror), "--format", "json"]) == 1
    assert [r["path"] for r in _json(capsys)["reports"]] == [LEGAL, ILLEGAL]
    assert main(["audit", "--pr", "7", "--repo", mirror.as_uri(), "--format", "json"]) == 1
    reports = _json(capsys)["reports"]
    assert reports[1]["verdict"] == "FAIL" and reports[1]["stats"]["pr"]["repo"] == mirror.as_uri()


def test_merged_pr_is_compared_with_the_base_before_its_merge(upstream, capsys):
    assert main(["audit", "--pr", "9", "--repo", str(upstream), "--format", "json"]) in (0, 1)
    report = _json(capsys)
    assert report["path"] == MERGED  # one folder: the one-report form
    pr = report["stats"]["pr"]
    assert pr["merged"] is True and pr["title"] == "Record: tiny merged" and pr["date"] == "2026-04-06"
    record = report["stats"]["review"]["record"]  # the base moved on: the record of 2026-04-06 landed after PR 7 forked
    assert record["folder"] == LATER.split("/")[-1] and record["val_bpb"] == pytest.approx(1.18)
    assert [row["rule"] for row in report["stats"]["review"]["significance"]] == ["readme", "frontier"]


def test_fast_forwarded_pr_and_an_undated_folder_judged_at_the_pr_date(upstream, capsys):
    assert main(["audit", "--pr", "10", "--repo", str(upstream), "--format", "json"]) in (0, 1)
    report = _json(capsys)
    assert report["path"] == UNDATED and report["stats"]["pr"]["merged"] is True
    review = report["stats"]["review"]
    assert (review["date"], review["date_source"]) == ("2026-04-08", "the PR's date")
    assert review["record"]["folder"] == MERGED.split("/")[-1]  # merged 2026-04-07, the best before 04-08


def test_bad_inputs_exit_2_with_one_line(upstream, tmp_path, capsys):
    assert main(["audit", "--pr", "42", "--repo", str(upstream)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "refs/pull/42/head is not in" in err
    assert "git fetch origin +refs/pull/42/head:refs/pull/42/head" in err
    plain = tmp_path / "plain"
    plain.mkdir()
    for argv in (["--pr", "7", "--repo", str(plain)], ["--pr", "7", "--repo", str(tmp_path / "missing")],
                 ["--pr", "7", "--repo", str(upstream), "--base", "trunk"], ["--pr", "7", LEGAL],
                 ["--repo", str(upstream)], [], ["--pr", "7", "--repo", (tmp_path / "missing.git").as_uri()]):
        assert main(["audit", *argv]) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1, (argv, captured.err)
    assert not (tmp_path / "missing").exists()


def test_pr_without_records_folder_is_a_note_and_exit_0(upstream, capsys):
    assert main(["audit", "--pr", "8", "--repo", str(upstream), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"reports": []}
    assert "PR #8 changes no records folder" in captured.err


def test_markdown_review_comment(upstream, capsys):
    assert main(["audit", "--pr", "7", "--repo", str(upstream), "--format", "markdown"]) == 1
    text = capsys.readouterr().out
    assert text.startswith("## golf audit of PR #7: Record: tiny legal and tiny val training")
    assert "**Verdict: ❌ FAIL**" in text and f"`{ILLEGAL}`" in text
    line = (HEADER + ILLEGAL_MAIN).splitlines().index(ILLEGAL_LINE) + 1
    assert f"`{ILLEGAL}/train_gpt.py:{line}`" in text and f"  {line}: {ILLEGAL_LINE.strip()}" in text
    assert "PR date 2026-04-02, the committer date of the PR's first commit" in text.split("\n\n")[1]
    illegal = text[text.index(f"### ❌ **FAIL** `{ILLEGAL}`"):]
    assert "Dated rulings judged at **2026-04-03** (folder name 2026-04-03_TinyValTraining): STAT-1 from" in illegal
    record = "Record of the day: **1.20120** val_bpb, `2026-03-20_TinyBase`"  # main's record before 2026-04-03
    assert illegal.index("**Errors (") < illegal.index(record) < illegal.index("Seeds: 3, mean val_bpb 1.01100")
    assert "| 0.005 nats at p < 0.01 (README) | yes | welch |" in illegal
    assert "Ran: the static audit only" in text


def test_changed_folders_maps_files_to_records_folders():
    assert pulls.changed_folders([
        "README.md", "records/track_a/README.md", "records/track_a/x/train_gpt.py", "records/track_a/x/logs/s1.log",
        "records/track_b/y/submission.json", "data/records/track_a/z/f.py", "records/track_a",
    ]) == ["records/track_a/x", "records/track_b/y"]
    assert pulls.track_of("records/track_10min_16mb/x") == "10min_16mb"


def test_staged_audits_what_the_index_holds(upstream, tmp_path, capsys, monkeypatch):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    folder = clone / TRACK / "2026-05-01_Staged"
    commit_files = under(f"{TRACK}/2026-05-01_Staged", folder_files("Staged", ILLEGAL_MAIN, [1.1, 1.1, 1.1], "2026-05-01"))
    for rel, text in commit_files.items():
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text(text)
    git(clone, "add", "-A")
    (folder / "train_gpt.py").write_text(HEADER + LEGAL_MAIN)  # unstaged: the commit would still hold the illegal code
    (clone / BASE_RECORD / "README.md").write_text("unstaged edit of another folder\n")
    monkeypatch.chdir(clone)
    assert main(["audit", "--staged", "--format", "json"]) == 1
    report = _json(capsys)
    assert report["path"] == f"{TRACK}/2026-05-01_Staged" and report["verdict"] == "FAIL"
    git(clone, "reset", "-q")
    assert main(["audit", "--staged", "--format", "json"]) == 0
    assert _json(capsys) == {"reports": []}


@pytest.mark.slow  # one replay: the submission trains and evaluates on small shards
def test_replay_runs_only_when_asked(tmp_path, capsys):
    from test_replay_fixtures import source

    from audit.replay.run import SYNTHETIC
    from golf.data.corpus import build_demo

    data = tmp_path / "data"
    build_demo(data, **SYNTHETIC)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "# challenge\n"}, "start", "2026-05-01T08:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr")
    folder = f"{TRACK}/2026-05-02_TrainsBeforeScoring"
    commit(repo, {f"{folder}/train_gpt.py": source("ttt_before_score")}, "Record: replay me", "2026-05-02T08:00:00+00:00")
    git(repo, "update-ref", "refs/pull/3/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    assert main(["audit", "--pr", "3", "--repo", str(repo), "--format", "json"]) == 1
    assert _json(capsys)["replay"] == {}  # the static audit ran nothing
    assert main(["audit", "--pr", "3", "--repo", str(repo), "--format", "json", "--replay", "--data", str(data)]) == 1
    report = _json(capsys)
    assert report["path"] == folder and report["replay"]["updates_using_val"] > 0
    assert report["replay"]["first_violation"] is not None
