"""`golf audit --pr N` and `--staged` on a git repository the test builds: dated commits, a base
branch that moves on after the PR branched, PR refs (open, docs-only, merged), a bare mirror and a
URL; the clone's work tree is never touched; the markdown review comment."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from audit import pr as pulls
from golf.cli import main

TRACK = "records/track_10min_16mb"
LEGAL = f"{TRACK}/2026-04-02_TinyLegal"
ILLEGAL = f"{TRACK}/2026-04-03_TinyValTraining"
BASE_RECORD = f"{TRACK}/2026-03-20_TinyBase"
LATER = f"{TRACK}/2026-04-05_LandedAfterTheFork"
MERGED = f"{TRACK}/2026-04-06_TinyMerged"

HEADER = '''import glob, math, os
import numpy as np
import torch


class Hyperparameters:
    val_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_val_*.bin")
    train_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_train_*.bin")
    seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 1024))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))


def load_tokens(pattern, seq_len):
    tokens = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
    return tokens[: ((tokens.numel() - 1) // seq_len) * seq_len + 1]


def eval_val(args, model, val_tokens, bytes_per_token):
    loss_sum, byte_sum = 0.0, 0.0
    with torch.inference_mode():
        for i in range((val_tokens.numel() - 1) // args.seq_len):
            chunk = val_tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
            loss_sum += float(model(chunk[:-1][None], chunk[1:][None])) * args.seq_len
            byte_sum += float(bytes_per_token[chunk[1:]].sum())
    return loss_sum / byte_sum / math.log(2)


def fit(model, tokens, args, steps):
    opt = torch.optim.AdamW(model.parameters())
    for step in range(steps):
        i = step % ((tokens.numel() - 1) // args.seq_len)
        chunk = tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
        loss = model(chunk[:-1][None], chunk[1:][None])
        opt.zero_grad()
        loss.backward()
        opt.step()
'''
LEGAL_MAIN = '''

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(8, 8)
    fit(model, load_tokens(args.train_files, args.seq_len), args, 100)
    val_tokens = load_tokens(args.val_files, args.seq_len)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, torch.ones(1024)):.6f}")
'''
ILLEGAL_MAIN = '''

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(8, 8)
    val_tokens = load_tokens(args.val_files, args.seq_len)
    fit(model, val_tokens, args, 100)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, torch.ones(1024)):.6f}")
'''
ILLEGAL_LINE = "    fit(model, val_tokens, args, 100)"


def _log(seed: int, bpb: float) -> str:
    return (f"Hyperparameters:\n  seed: {seed}\n  max_wallclock_seconds: 600.0\n"
            f"stopping_early: wallclock_cap train_time:599000ms step:5000/20000\n"
            f"Total submission size int8+zlib: 15000000 bytes\n"
            f"final val_loss:{bpb * 1.69:.4f} val_bpb:{bpb:.4f} eval_time:60000ms\n")


def _folder(name: str, main_code: str, scores: list[float], date: str) -> dict[str, str]:
    files = {"train_gpt.py": HEADER + main_code,
             "README.md": f"# {name}\n\nA tiny submission written for the tests.\n",
             "submission.json": json.dumps({"name": name, "author": "golf tests", "github_id": "golf-tests",
                                            "date": date, "val_bpb": round(sum(scores) / len(scores), 4),
                                            "seeds": list(range(1, len(scores) + 1)), "bytes_total": 15000000})}
    for seed, bpb in enumerate(scores, 1):
        files[f"train_seed{seed}.log"] = _log(seed, bpb)
    return files


def git(cwd: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "golf tests", "GIT_AUTHOR_EMAIL": "tests@golf.invalid",
           "GIT_COMMITTER_NAME": "golf tests", "GIT_COMMITTER_EMAIL": "tests@golf.invalid"}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str, date: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


def _under(folder: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{folder}/{rel}": text for rel, text in files.items()}


def build_upstream(repo: Path) -> Path:
    """main: a base record; PR 7 (two commits, a legal and an illegal folder, a root README edit)
    branched before main moved on; PR 8 edits only docs; PR 9 was merged with a merge commit."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "# challenge\n", **_under(BASE_RECORD, _folder("Base", LEGAL_MAIN, [1.2012, 1.2020, 1.2004], "2026-03-20"))},
           "Record: tiny base", "2026-03-20T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr7")
    commit(repo, _under(LEGAL, _folder("Legal", LEGAL_MAIN, [1.1500, 1.1510, 1.1490], "2026-04-02")),
           "Record: tiny legal and tiny val training", "2026-04-02T09:00:00+00:00")
    commit(repo, {"README.md": "# challenge\n\nedited by the PR\n",
                  **_under(ILLEGAL, _folder("Illegal", ILLEGAL_MAIN, [1.0100, 1.0120, 1.0110], "2026-04-03"))},
           "add the second folder", "2026-04-03T09:00:00+00:00")
    git(repo, "update-ref", "refs/pull/7/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    commit(repo, _under(LATER, _folder("Later", LEGAL_MAIN, [1.1800, 1.1810, 1.1790], "2026-04-05")),
           "Record: landed on main after PR 7 branched", "2026-04-05T12:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr8")
    commit(repo, {"README.md": "# challenge\n\ntypo fixed\n"}, "docs: typo", "2026-04-05T13:00:00+00:00")
    git(repo, "update-ref", "refs/pull/8/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "pr9")
    commit(repo, _under(MERGED, _folder("Merged", LEGAL_MAIN, [1.1700, 1.1710, 1.1690], "2026-04-06")),
           "wip", "2026-04-06T08:00:00+00:00")
    git(repo, "update-ref", "refs/pull/9/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "pr9", "-m", "Merge pull request #9 from tests/pr9\n\nRecord: tiny merged",
        date="2026-04-07T10:00:00+00:00")
    for branch in ("pr7", "pr8", "pr9"):
        git(repo, "branch", "-q", "-D", branch)
    return repo


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
    assert [r["verdict"] for r in _json(capsys)["reports"]][1] == "FAIL"


def test_merged_pr_is_compared_with_the_base_before_its_merge(upstream, capsys):
    assert main(["audit", "--pr", "9", "--repo", str(upstream), "--format", "json"]) in (0, 1)
    report = _json(capsys)
    assert report["path"] == MERGED  # one folder: the one-report form
    pr = report["stats"]["pr"]
    assert pr["merged"] is True and pr["title"] == "Record: tiny merged" and pr["date"] == "2026-04-06"


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
    assert text.index("Submission date for dated rulings: **2026-04-02**") < text.index(f"### ✅ **PASS** `{LEGAL}`")
    illegal = text[text.index(f"### ❌ **FAIL** `{ILLEGAL}`"):]
    assert illegal.index("**Errors (") < illegal.index("Record of the day:") < illegal.index("Seeds: 3, mean val_bpb 1.01100")
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
    commit_files = _under(f"{TRACK}/2026-05-01_Staged", _folder("Staged", ILLEGAL_MAIN, [1.1, 1.1, 1.1], "2026-05-01"))
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
