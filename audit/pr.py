"""Pull requests and staged commits as audit inputs: which records folders they add or change.

A records folder is the directory directly under records/<track>/ (records/track_10min_16mb/
2026-04-06_Name). `changed_folders` maps changed file paths to those folders; it is the one
discovery used by `golf audit --pr N` (the PR head against its fork point from the base branch)
and `golf audit --staged` (the index against HEAD, for a pre-commit hook).

The folders are read with git plumbing (ls-tree / ls-files + one `git cat-file --batch`) into a
temporary folder: the repository's work tree and index are never touched, a bare mirror works, and
nothing from the PR is run. Blobs a partial mirror does not hold are left out and listed.

The fork point: `git merge-base BASE HEAD`, except for a PR already merged into BASE (the merge base
is then the head itself): the first-parent commit of BASE that brought the head in is found, and
the fork point is the merge base of its first parent with the head. The PR's date (for rulings
that apply from a date on) is the committer date of the PR's first commit after the fork point,
the closest the history gets to the PR's creation, by which the challenge orders submissions.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from golf.errors import GolfError

RECORDS = "records"
MERGE_SUBJECT = re.compile(r"^Merge (?:pull request|PR) #(\d+)(?:: (.*)| from .*)?$")


@dataclass
class PullRequest:
    """What a review needs to know about one PR, before any of its folders is audited."""

    number: int
    repo: str  # where it was read from: the git dir, or the URL it was fetched from
    base: str  # the base branch as given (main)
    base_ref: str  # the ref it was found as (refs/heads/main, refs/remotes/origin/main)
    head: str  # commit of refs/pull/N/head
    fork_point: str
    merged: bool  # the head is already contained in the base branch
    title: str
    date: dt.date
    date_source: str
    folders: list[str] = field(default_factory=list)  # records folders the PR adds or changes, at its head
    skipped_blobs: list[str] = field(default_factory=list)  # files the mirror does not hold

    def to_dict(self) -> dict:
        out = asdict(self)
        out["date"] = self.date.isoformat()
        return out


def _git(git_dir: str | None, *args: str, cwd: str | None = None, check: bool = True) -> str:
    command = ["git"] + (["--git-dir", git_dir] if git_dir else []) + list(args)
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise GolfError("git is not installed") from None
    if check and done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise GolfError(f"git {' '.join(args[:2])}: {message}")
    return done.stdout if done.returncode == 0 else ""


def _verify(git_dir: str, rev: str) -> str | None:
    out = _git(git_dir, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}", check=False).strip()
    return out or None


def is_url(repo: str) -> bool:
    return "://" in repo or bool(re.match(r"^[\w.-]+@[\w.-]+:", repo))


def local_git_dir(repo: str | None) -> str:
    """The git dir of a clone or bare repository at `repo` (default: the current directory's)."""
    where = repo or "."
    if not Path(where).is_dir():
        raise GolfError(f"{where}: no such folder (give a git clone, a bare repository or a URL with --repo)")
    out = _git(None, "rev-parse", "--absolute-git-dir", cwd=where, check=False).strip()
    if not out:
        raise GolfError(f"{where}: not a git repository (give a clone, a bare repository or a URL with --repo)")
    return out


def fetch_hint(number: int) -> str:
    return (f"fetch it with `git fetch origin +refs/pull/{number}/head:refs/pull/{number}/head` "
            f"(or every PR: `git fetch origin '+refs/pull/*/head:refs/pull/*/head'`)")


def fetch_remote(url: str, number: int, base: str, into: Path) -> str:
    """A bare repository in `into` holding the PR head and the base branch of the remote `url`."""
    git_dir = str(into)
    _git(None, "init", "--quiet", "--bare", git_dir)
    done = subprocess.run(["git", "--git-dir", git_dir, "fetch", "--quiet", "--no-tags", url,
                           f"+refs/pull/{number}/head:refs/pull/{number}/head",
                           f"+refs/heads/{base}:refs/heads/{base}"], capture_output=True, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})  # fail, never wait for a password
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise GolfError(f"{url}: cannot fetch PR #{number} and branch {base}: {message}")
    return git_dir


def resolve_base(git_dir: str, base: str) -> tuple[str, str]:
    """(ref, sha) of the base branch: the local branch, else origin's (a CI checkout has only that)."""
    for candidate in (f"refs/heads/{base}", f"refs/remotes/origin/{base}", base):
        sha = _verify(git_dir, candidate)
        if sha:
            return candidate, sha
    raise GolfError(f"base branch {base!r} not found in {git_dir} (name it with --base)")


def _merge_commit(git_dir: str, head: str, base_sha: str) -> str | None:
    """The merge commit on the base's first-parent line that brought a merged head in, if any."""
    line = _git(git_dir, "rev-list", "--first-parent", "--ancestry-path", f"{head}..{base_sha}").split()
    if not line:
        return None
    oldest = line[-1]  # the first commit of the base's own line that contains the head
    return oldest if len(_git(git_dir, "rev-list", "--parents", "-n", "1", oldest).split()) > 2 else None


def fork_point(git_dir: str, base_sha: str, head: str) -> tuple[str, bool]:
    """(the commit the PR branched from, whether the head is already merged into the base)."""
    merge_base = _git(git_dir, "merge-base", base_sha, head, check=False).strip()
    if not merge_base:
        raise GolfError(f"the PR head {head[:12]} shares no history with the base branch")
    if merge_base != head:
        return merge_base, False
    merge = _merge_commit(git_dir, head, base_sha)
    if merge is not None:  # the base as it was before the PR came in
        return _git(git_dir, "merge-base", f"{merge}^1", head).strip(), True
    # Fast-forwarded or rebased onto the base: only the head commit is known to be the PR's.
    parent = _verify(git_dir, f"{head}^")
    if parent is None:
        raise GolfError(f"the PR head {head[:12]} is a root commit; nothing to compare it with")
    return parent, True


def changed_folders(paths: list[str]) -> list[str]:
    """The records folders (records/<track>/<folder>) that contain any of `paths`, sorted, once each."""
    folders = set()
    for path in paths:
        parts = path.strip("/").split("/")
        if len(parts) >= 4 and parts[0] == RECORDS:
            folders.add("/".join(parts[:3]))
    return sorted(folders)


def track_of(folder: str) -> str:
    """records/track_10min_16mb/X -> 10min_16mb (the leaderboard's track name)."""
    parts = folder.split("/")
    track = parts[1] if len(parts) > 1 else ""
    return track[len("track_"):] if track.startswith("track_") else track


def _title(git_dir: str, number: int, first: str, merged: bool, base_sha: str, head: str) -> str:
    """The PR's title: from the merge commit GitHub wrote when it was merged, else its first commit's subject."""
    merge = _merge_commit(git_dir, head, base_sha) if merged else None
    if merge is not None:
        subject, _, body = _git(git_dir, "log", "-1", "--format=%s%n%b", merge).partition("\n")
        match = MERGE_SUBJECT.match(subject.strip())
        if match and int(match.group(1)) == number:
            title = match.group(2) or next((l.strip() for l in body.splitlines() if l.strip()), "")
            if title:
                return title
    return _git(git_dir, "log", "-1", "--format=%s", first).strip()


def open_pr(git_dir: str, number: int, base: str = "main") -> PullRequest:
    """The PR's head, fork point, date, title and changed records folders (reads refs only)."""
    head = _verify(git_dir, f"refs/pull/{number}/head")
    if head is None:
        raise GolfError(f"refs/pull/{number}/head is not in {git_dir}; {fetch_hint(number)}")
    base_ref, base_sha = resolve_base(git_dir, base)
    fork, merged = fork_point(git_dir, base_sha, head)
    own = _git(git_dir, "rev-list", "--first-parent", f"{fork}..{head}").split() or [head]
    first = own[-1]
    stamp = _git(git_dir, "log", "-1", "--format=%cI", first).strip()
    changed = _git(git_dir, "diff", "--name-only", "--no-renames", "-z", fork, head).split("\0")
    at_head = set(_git(git_dir, "ls-tree", "-d", "--name-only", "-r", head, "--", RECORDS).split("\n"))
    return PullRequest(
        number=number, repo=git_dir, base=base, base_ref=base_ref, head=head, fork_point=fork, merged=merged,
        title=_title(git_dir, number, first, merged, base_sha, head),
        date=dt.datetime.fromisoformat(stamp).date(),
        date_source=f"committer date of the PR's first commit {first[:12]}",
        folders=[f for f in changed_folders(changed) if f in at_head],  # a folder the PR deletes: nothing to audit
    )


def _write_blobs(git_dir: str | None, entries: list[tuple[str, str, str]], dest: Path, cwd: str | None = None) -> list[str]:
    """Write each (mode, sha, path) blob under dest/path with one `git cat-file --batch`; returns
    the paths whose blob is missing. Links and submodules are not written (never followed)."""
    files = [(sha, path) for mode, sha, path in entries if mode in ("100644", "100755")]
    if not files:
        return []
    command = ["git"] + (["--git-dir", git_dir] if git_dir else []) + ["cat-file", "--batch"]
    request = "".join(f"{sha}\n" for sha, _ in files).encode()
    done = subprocess.run(command, input=request, capture_output=True, cwd=cwd)
    if done.returncode != 0:
        raise GolfError(f"git cat-file: {done.stderr.decode(errors='replace').strip() or 'failed'}")
    out, pos, missing = done.stdout, 0, []
    for sha, path in files:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            missing.append(path)
            continue
        size = int(header[2])
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out[pos:pos + size])
        pos += size + 1
    return missing


def extract_commit(git_dir: str, commit: str, folders: list[str], dest: Path) -> list[str]:
    """Write `folders` as they are at `commit` under dest/<folder>; returns the missing blobs."""
    entries = []
    for line in _git(git_dir, "ls-tree", "-r", "-z", commit, "--", *folders).split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, _, sha = meta.split()
            entries.append((mode, sha, path))
    return _write_blobs(git_dir, entries, dest)


def staged_folders(work_tree: str = ".") -> list[str]:
    """The records folders with staged changes (added, copied, modified, renamed) in the index."""
    top = _git(None, "rev-parse", "--show-toplevel", cwd=work_tree, check=False).strip()
    if not top:
        raise GolfError(f"{work_tree}: not inside a git work tree")
    changed = _git(None, "diff", "--cached", "--name-only", "--no-renames", "-z", "--diff-filter=ACMR",
                   cwd=top).split("\0")
    return changed_folders(changed)


def extract_index(work_tree: str, folders: list[str], dest: Path) -> list[str]:
    """Write `folders` as they are staged in the index (what the commit will hold) under dest."""
    top = _git(None, "rev-parse", "--show-toplevel", cwd=work_tree).strip()
    entries = []
    for line in _git(None, "ls-files", "-s", "-z", "--", *folders, cwd=top).split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, sha, _stage = meta.split()
            entries.append((mode, sha, path))
    return _write_blobs(None, entries, dest, cwd=top)
