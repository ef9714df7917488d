"""The record leaderboard of a parameter-golf clone, built from its git history.

Each `records/track_<track>/<folder>/` present at the ref is one entry: its score from
submission.json (the records spell it `val_bpb`, `mean_val_bpb`, `mean_bpb`, or only per seed), its
per-seed val_bpb (submission.json `seed_results` / `seeds` / `seed_scores`, else the folder's run
logs), and the date it reached the ref: the commit that last added the folder on the first-parent
history (one `git log` for all folders). A `record_support` folder (an independent multi-seed
reproduction of another PR) is folded into the entry of the PR it supports, as the README does.

Two views: `entries` sorted by score (the README table), and `rows`, the chronological frontier
(an entry whose score beats every entry merged before it). `record_at(date)` is the frontier row
standing on a date (the best entry merged strictly before it). The result is cached as JSON next
to the clone, keyed by the ref's sha, so a second call reads one file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from golf.errors import GolfError

CACHE_VERSION = 1
RECORD_SUPPORT = "record_support"  # submission_type of a reproduction folded into the PR it supports
REPO_ENV = "GOLF_REPO"  # the clone `golf leaderboard`, STAT-1 (PG016) and `--against auto` read by default
SCORE_KEYS = ("val_bpb", "mean_val_bpb", "mean_bpb", "val_bpb_mean")
PER_SEED_KEYS = ("seed_results", "seeds")  # {seed: {"val_bpb": x}} under either name
LOG_SUFFIXES = (".log", ".txt")
_PR_IN_SUBJECT = re.compile(r"(?:pull request|PR) #(\d+)|\(#(\d+)\)\s*$")
_FOLDER_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


@dataclass
class Row:
    """One record folder of the leaderboard."""

    val_bpb: float
    date: dt.date  # the UTC day its folder reached the ref (first-parent history)
    folder: str
    name: str
    seeds: list[float] | None = None  # per-seed val_bpb when submission.json or the logs give them
    pr: int | None = None  # from the subject of the commit that added it
    author: str = ""
    claimed_date: dt.date | None = None  # the folder's date prefix, else submission.json "date"
    commit: str = ""
    merged_at: str = ""  # UTC ISO time of that commit (orders rows merged the same day)
    supported_by: list[str] = field(default_factory=list)  # record_support folders folded in

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["date"] = self.date.isoformat()
        out["claimed_date"] = self.claimed_date.isoformat() if self.claimed_date else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Row":
        data = dict(data)
        data["date"] = dt.date.fromisoformat(data["date"])
        data["claimed_date"] = dt.date.fromisoformat(data["claimed_date"]) if data.get("claimed_date") else None
        return cls(**data)


@dataclass
class Leaderboard:
    track: str
    ref: str
    sha: str
    entries: list[Row]  # every scored record folder, best score first (the README table's order)
    skipped: dict[str, str] = field(default_factory=dict)  # folder -> why it has no row
    cache_path: str = ""
    from_cache: bool = False

    @property
    def rows(self) -> list[Row]:
        """The chronological frontier, oldest first: each row beats every entry merged before it."""
        frontier: list[Row] = []
        for row in sorted(self.entries, key=lambda r: (r.merged_at, r.val_bpb)):
            if not frontier or row.val_bpb < frontier[-1].val_bpb:
                frontier.append(row)
        return frontier

    def record_at(self, date: dt.date, exclude: Iterable[str] = (), by: str = "merged") -> Row | None:
        """The record standing on `date`: the best entry dated strictly before that day, leaving out
        the folders in `exclude` (e.g. the submission under audit when it is itself merged).

        by="merged" dates an entry by the day it reached the ref (what the leaderboard showed then);
        by="submitted" by its own date (folder prefix / submission.json, else the merge day): the
        chronological frontier a submission is judged against, since records are accepted in the
        order they were submitted (CHRONO-1) and merges lagged by days near the end."""
        if by not in ("merged", "submitted"):
            raise ValueError(f"record_at: by must be 'merged' or 'submitted', not {by!r}")
        left_out = set(exclude)
        standing = None
        for row in sorted(self.entries, key=lambda r: (r.merged_at, r.val_bpb)):
            day = row.date if by == "merged" else (row.claimed_date or row.date)
            if day < date and row.folder not in left_out and (standing is None or row.val_bpb < standing.val_bpb):
                standing = row
        return standing

    def to_dict(self) -> dict[str, Any]:
        return {"version": CACHE_VERSION, "track": self.track, "ref": self.ref, "sha": self.sha,
                "entries": [r.to_dict() for r in self.entries], "skipped": self.skipped}


# -- reading the repository ------------------------------------------------------------------------

def _git(git_dir: str, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise GolfError("git is not installed") from None
    if done.returncode != 0:
        raise GolfError(f"git {' '.join(args[:2])}: {done.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    return done.stdout


def repo_from(value: str | None, what: str = "--repo") -> str:
    """The clone to read: the value given, else $GOLF_REPO; one clear error when neither is set."""
    repo = value or os.environ.get(REPO_ENV)
    if not repo:
        raise GolfError(f"{what} needs a clone of openai/parameter-golf: pass --repo GIT_DIR or set {REPO_ENV}")
    return repo


def resolve_git_dir(repo: str) -> str:
    """The git directory of a clone: a bare repository or a work tree's .git."""
    path = Path(repo).expanduser()
    if not path.exists():
        raise GolfError(f"{repo}: no such repository")
    if (path / ".git").exists():
        path = path / ".git"
    if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
        raise GolfError(f"{repo}: not a git repository")
    return str(path)


def _read_blobs(git_dir: str, specs: list[str]) -> dict[str, bytes]:
    """The contents of `rev:path` blobs in one `git cat-file --batch` call."""
    if not specs:
        return {}
    out = _git(git_dir, "cat-file", "--batch", stdin="".join(s + "\n" for s in specs).encode())
    blobs, pos = {}, 0
    for spec in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] != b"blob":
            continue  # "missing"
        size = int(header[2])
        blobs[spec] = out[pos:pos + size]
        pos += size + 1
    return blobs


def _added_commits(git_dir: str, sha: str, prefix: str) -> dict[str, tuple[str, str, str]]:
    """folder -> (commit, ISO commit time, subject) of the newest first-parent commit adding a file in it."""
    text = _git(git_dir, "log", sha, "--first-parent", "--diff-merges=first-parent", "--diff-filter=A",
                "--no-renames", "--format=\x01%H\x02%cI\x02%s", "--name-only", "-z", "--", prefix).decode()
    added: dict[str, tuple[str, str, str]] = {}
    commit = None
    for chunk in text.split("\x00"):
        chunk = chunk.strip("\n")
        if "\x01" in chunk:
            head, _, path = chunk.partition("\x01")[2].partition("\n")
            commit = tuple(head.split("\x02", 2))
            chunk = path.strip("\n")
        if chunk.startswith(prefix) and commit is not None:
            folder = chunk[len(prefix):].split("/", 1)[0]
            added.setdefault(folder, commit)  # newest first: keep the first (latest) addition
    return added


def _pr_number(subject: str) -> int | None:
    match = _PR_IN_SUBJECT.search(subject)
    return int(match.group(1) or match.group(2)) if match else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def per_seed_scores(meta: dict[str, Any]) -> list[float] | None:
    """Per-seed val_bpb from submission.json: {seed: {"val_bpb": x}} or a `seed_scores` list."""
    for key in PER_SEED_KEYS:
        table = meta.get(key)
        if isinstance(table, dict):
            scores = [_number(v.get("val_bpb")) for v in table.values() if isinstance(v, dict)]
            if scores and all(s is not None for s in scores):
                return scores
    listed = meta.get("seed_scores")
    if isinstance(listed, list) and listed and all(_number(s) is not None for s in listed):
        return [float(s) for s in listed]
    return None


def headline_score(meta: dict[str, Any]) -> float | None:
    for key in SCORE_KEYS:
        if (value := _number(meta.get(key))) is not None:
            return value
    return None


def _claimed_date(folder: str, meta: dict[str, Any]) -> dt.date | None:
    text = (_FOLDER_DATE.match(folder) or _FOLDER_DATE.match(str(meta.get("date") or "")))
    try:
        return dt.date.fromisoformat(text.group(1)) if text else None
    except ValueError:
        return None


def _utc(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc)


def _build(git_dir: str, track: str, ref: str, sha: str) -> Leaderboard:
    from audit.runner.logs import parse_log

    prefix = f"records/track_{track}/"
    listing = _git(git_dir, "ls-tree", "-r", "-z", "--name-only", sha, "--", prefix).decode()
    files: dict[str, list[str]] = {}
    for path in filter(None, listing.split("\x00")):
        folder, _, rel = path[len(prefix):].partition("/")
        files.setdefault(folder, []).append(rel)
    if not files:
        raise GolfError(f"{ref}: no records/track_{track}/ folders (is --track right?)")
    added = _added_commits(git_dir, sha, prefix)

    def meta_file(rels: list[str]) -> str | None:
        top = sorted(r for r in rels if "/" not in r and r.startswith("submission") and r.endswith(".json"))
        return "submission.json" if "submission.json" in top else (top[0] if top else None)

    metas_raw = _read_blobs(git_dir, [f"{sha}:{prefix}{f}/{meta_file(r)}" for f, r in files.items() if meta_file(r)])
    metas: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for folder, rels in files.items():
        name = meta_file(rels)
        try:
            meta = json.loads(metas_raw[f"{sha}:{prefix}{folder}/{name}"]) if name else None
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            skipped[folder] = "no readable submission*.json"
            continue
        metas[folder] = meta
    # the logs of folders whose submission.json gives no per-seed scores (one more cat-file call)
    need_logs = [f for f, m in metas.items() if per_seed_scores(m) is None]
    log_specs = [f"{sha}:{prefix}{f}/{r}" for f in need_logs for r in files[f]
                 if r.endswith(LOG_SUFFIXES) and r.count("/") <= 1 and not Path(r).name.lower().startswith(
                     ("requirements", "license", "notes"))]
    logs = _read_blobs(git_dir, log_specs)
    logged: dict[str, list[float]] = {}
    for spec, data in logs.items():
        folder = spec[len(f"{sha}:{prefix}"):].split("/", 1)[0]
        summary = parse_log(data.decode("utf-8", errors="replace"), source=spec.rsplit("/", 1)[1])
        if summary.val_bpb is not None:
            logged.setdefault(folder, []).append(summary.val_bpb)

    entries: list[Row] = []
    supports: list[tuple[str, dict]] = []
    for folder, meta in metas.items():
        if meta.get("submission_type") == RECORD_SUPPORT:
            supports.append((folder, meta))
            continue
        seeds = per_seed_scores(meta) or logged.get(folder)
        score = headline_score(meta)
        if score is None and seeds:
            score = statistics.fmean(seeds)
        if score is None:
            skipped[folder] = "no val_bpb in submission.json or its logs"
            continue
        if folder not in added:
            skipped[folder] = "not added on the first-parent history"
            continue
        commit, when, subject = added[folder]
        entries.append(Row(val_bpb=score, date=_utc(when).date(), folder=folder, name=str(meta.get("name") or folder),
                           seeds=seeds, pr=_pr_number(subject), author=str(meta.get("author") or ""),
                           claimed_date=_claimed_date(folder, meta), commit=commit,
                           merged_at=_utc(when).isoformat()))
    for folder, meta in supports:
        target = next((r for r in entries if r.pr is not None and r.pr == meta.get("supports_pr")), None)
        seeds = per_seed_scores(meta) or logged.get(folder)
        score = headline_score(meta)
        if target is None or score is None:
            skipped[folder] = f"record_support of PR {meta.get('supports_pr')}: no such entry or no score"
            continue
        target.val_bpb, target.seeds = score, seeds  # the supported row stands on the larger sample
        target.supported_by.append(folder)
    entries.sort(key=lambda r: (r.val_bpb, r.merged_at))
    return Leaderboard(track=track, ref=ref, sha=sha, entries=entries, skipped=skipped)


# -- cache -------------------------------------------------------------------------------------------

def _cache_paths(git_dir: str, track: str, sha: str) -> list[Path]:
    name = f"golf-leaderboard-{track}-{sha}.json"
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "golf"
    return [Path(git_dir) / name, home / name]


def load_leaderboard(git_dir: str, track: str = "10min_16mb", ref: str = "main") -> Leaderboard:
    """The leaderboard of `track` at `ref` of the clone at `git_dir` (cached by the ref's sha)."""
    git_dir = resolve_git_dir(git_dir)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", track):
        raise GolfError(f"--track {track!r}: expected a name such as 10min_16mb")
    try:
        sha = _git(git_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except GolfError:
        raise GolfError(f"{git_dir}: no ref {ref!r}") from None
    paths = _cache_paths(git_dir, track, sha)
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("version") == CACHE_VERSION and data.get("sha") == sha:
            return Leaderboard(track=track, ref=ref, sha=sha, entries=[Row.from_dict(r) for r in data["entries"]],
                               skipped=data.get("skipped", {}), cache_path=str(path), from_cache=True)
    board = _build(git_dir, track, ref, sha)
    board.cache_path = _write_cache(paths, board.to_dict())
    return board


def _write_cache(paths: Iterable[Path], data: dict) -> str:
    """Write the first writable cache location atomically; '' when none is."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, path)
            return str(path)
        except OSError:
            continue
    return ""


def track_of(meta: dict | None, default: str = "10min_16mb") -> str:
    """The leaderboard track a submission.json names (its "track" when it is a track name)."""
    track = str((meta or {}).get("track") or "")
    return track if re.fullmatch(r"[A-Za-z0-9_]+", track) and "16mb" in track else default


def standing_record(repo: str, on: dt.date | None, folder_name: str = "", meta: dict | None = None) -> Row | None:
    """The record a submission dated `on` (today when unknown) is judged against: the best merged
    record submitted before that day (the chronological frontier), never the submission's own folder."""
    board = load_leaderboard(repo, track=track_of(meta))
    return board.record_at(on or dt.date.today(), exclude=[folder_name] if folder_name else [], by="submitted")


# -- significance against a row ------------------------------------------------------------------

def record_sample_of(record: Row, label: str = ""):
    """The record as a statistics Sample: its seeds when it has several, else its headline score."""
    from audit.runner.stats import Sample

    seeds = list(record.seeds) if record.seeds and len(record.seeds) >= 2 else [record.val_bpb]
    return Sample(label or record.folder, seeds)


def significance_table(candidate_seeds: list[float], record: Row, on: dt.date | None = None,
                       candidate_losses: list[float] | None = None) -> list[dict[str, Any]]:
    """Both significance rules of the challenge for the candidate's per-seed val_bpb against `record`
    (its seeds when known, else its headline score as one number), one dict per rule: rule, label,
    mean, record, delta (record - mean, bpb), t, p, alpha, margin_bpb, passed (None when the test
    cannot be computed), test, note, and with `on`, whether the rule applied on that date."""
    from audit.rulings import stat1_variants_at
    from audit.runner.stats import Sample, significance

    new = Sample("candidate", list(candidate_seeds), list(candidate_losses or []))
    ref = record_sample_of(record)
    applied = set(stat1_variants_at(on)) if on is not None else None
    mean = new.mean() if new.n else None
    out = []
    for sig in significance(new, ref):
        row = {
            "rule": sig.rule,
            "label": "0.005 nats at p < 0.01 (README)" if sig.rule == "readme" else "p < 0.25 (frontier practice)",
            "mean": mean,
            "record": ref.mean(),
            "record_folder": record.folder,
            "delta": None if mean is None else ref.mean() - mean,
            "t": sig.statistic,
            "p": sig.p_value,
            "alpha": sig.alpha,
            "margin_bpb": sig.margin_bpb,
            "passed": sig.passed,
            "test": sig.test,
            "note": sig.note,
        }
        if applied is not None:
            row["applied"] = sig.rule in applied
        out.append(row)
    return out
