"""docs/ci/: the GitHub Actions workflow's audit step (read from the YAML, run with bash as the runner
would) in a clone of a repository the test builds, as actions/checkout leaves it (no PR refs), and
the pre-commit hook on staged records folders. `golf` is this checkout, put on PATH."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from git_pr_repo import ILLEGAL, ILLEGAL_MAIN, LEGAL, LEGAL_MAIN, TRACK, build_upstream, folder_files, git, under

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "docs" / "ci" / "golf-audit.yml"
HOOK = REPO / "docs" / "ci" / "pre-commit-hook.sh"


@pytest.fixture(scope="module")
def golf_on_path(tmp_path_factory) -> dict[str, str]:
    """An environment whose `golf` runs this checkout's toolkit with the test's Python."""
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "golf").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m golf "$@"\n')
    (bin_dir / "golf").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    return build_upstream(tmp_path_factory.mktemp("golf_ci") / "upstream")


def _checkout(upstream: Path, tmp_path: Path) -> Path:
    """A clone as actions/checkout leaves it: detached HEAD, no local branch, no PR refs."""
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(upstream), str(checkout))
    git(checkout, "checkout", "-q", "--detach")
    git(checkout, "branch", "-q", "-D", "main")
    return checkout


def _audit_step() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["audit"]["steps"]
    return next(step for step in steps if step.get("id") == "audit")


@pytest.mark.slow  # three golf processes, about 9 s on 2 shared cores
def test_workflow_audit_step_on_a_fork_pr_checkout(upstream, tmp_path, golf_on_path):
    step = _audit_step()
    assert set(step["env"]) == {"PR_NUMBER", "BASE_REF"}
    checkout = _checkout(upstream, tmp_path)
    summary = tmp_path / "summary.md"
    env = {**golf_on_path, "PR_NUMBER": "7", "BASE_REF": "main", "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # an error-level finding fails the job
    annotations = done.stdout.splitlines()
    assert any(a.startswith(f"::error file={ILLEGAL}/train_gpt.py,line=") for a in annotations), done.stdout
    assert not any(LEGAL in a for a in annotations if not a.startswith("::notice"))  # STAT-1 passes: a notice
    sarif = json.loads((checkout / "golf.sarif").read_text())
    assert [run["properties"]["path"] for run in sarif["runs"]] == [LEGAL, ILLEGAL]
    assert sarif["runs"][1]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        f"{ILLEGAL}/train_gpt.py"
    assert summary.read_text().startswith("## golf audit of PR #7:")
    assert git(checkout, "--no-optional-locks", "status", "--porcelain") == "?? golf.sarif"


def test_workflow_passes_a_docs_only_pr(upstream, tmp_path, golf_on_path):
    checkout = _checkout(upstream, tmp_path)
    env = {**golf_on_path, "PR_NUMBER": "8", "BASE_REF": "main"}
    done = subprocess.run(["bash", "-e", "-c", _audit_step()["run"]], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "PR #8 changes no records folder" in done.stderr and done.stdout == ""


def test_pre_commit_hook_stops_an_illegal_commit(upstream, tmp_path, golf_on_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    hook = clone / ".git" / "hooks" / "pre-commit"
    hook.write_text(HOOK.read_text())
    hook.chmod(0o755)
    name = f"{TRACK}/2026-05-02_Hooked"
    for rel, text in under(name, folder_files("Hooked", ILLEGAL_MAIN, [1.1, 1.1, 1.1], "2026-05-02")).items():
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text(text)
    env = {**golf_on_path, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"}

    def commit() -> subprocess.CompletedProcess:
        subprocess.run(["git", "add", "-A"], cwd=clone, env=env, check=True)
        return subprocess.run(["git", "commit", "-q", "-m", "add a record"], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=120)

    refused = commit()
    assert refused.returncode != 0 and "DATA-1" in refused.stderr
    assert git(clone, "rev-list", "--count", "HEAD") == git(upstream, "rev-list", "--count", "main")
    (clone / name / "train_gpt.py").write_text((clone / name / "train_gpt.py").read_text().replace(
        ILLEGAL_MAIN, LEGAL_MAIN))
    accepted = commit()
    assert accepted.returncode == 0, accepted.stderr
    assert git(clone, "log", "-1", "--format=%s") == "add a record"
