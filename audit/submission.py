"""The submission folder model: which files a submission has, read safely, and its AuditContext.

A submission is a records-style folder (train_gpt.py, README.md, submission.json, run logs, maybe
helper modules, tokenizers, native code) or a single Python file. `load_submission` reads it with
the checks a reviewer's tool needs (every bad input is one GolfError line: missing path, empty
folder, no Python, binary or non-UTF-8 text, a file over the size limit, malformed
submission.json); `build_context` normalises the entry file (audit/normalize.py), reports syntax
errors as file:line, and hands the result to the static engine. Nothing in the folder is imported
or executed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from audit.normalize import Normalized, normalize_source
from golf.errors import GolfError

MAX_TEXT_BYTES = 20 * 1024 * 1024  # no legal submission ships a text file this large
MAX_DEPTH = 3  # folder levels searched (records keep logs in logs/, kernels in ngram/)
ENTRY_NAME = "train_gpt.py"
TEXT_SUFFIXES = (".py", ".md", ".json", ".log", ".txt", ".sh")
LOG_SUFFIXES = (".log", ".txt")
NOT_LOGS = ("requirements", "license", "notes")  # .txt files that are not run logs
SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}

# submission.json fields as the records write them: name -> accepted types
SCHEMA: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "author": (str,),
    "github_id": (str,),
    "blurb": (str,),
    "date": (str,),
    "track": (str,),
    "val_bpb": (int, float),
    "val_loss": (int, float),
    "val_bpb_std": (int, float),
    "bytes_total": (int,),
    "bytes_code": (int,),
    "artifact_bytes": (int,),
    "seeds": (list, dict),
    "seed_results": (dict,),
}
REQUIRED = ("name", "author", "val_bpb")


@dataclass
class Submission:
    """The files of one audited submission, read and checked."""

    root: Path
    entry: str  # relative path of the Python entry file
    python: dict[str, str] = field(default_factory=dict)  # every .py file: relative path -> text
    logs: dict[str, str] = field(default_factory=dict)
    readme: str | None = None
    meta: dict | None = None  # parsed submission.json
    commands: dict[str, str] = field(default_factory=dict)  # shell scripts with run commands
    manifests: dict[str, str] = field(default_factory=dict)  # other JSON files (data manifests)
    sizes: dict[str, int] = field(default_factory=dict)  # every file of the folder -> bytes
    single_file: bool = False  # a file path was audited, not a folder

    @property
    def other_files(self) -> list[str]:
        return sorted(p for p in self.sizes if not p.endswith(".py"))


def _decode(rel: str, data: bytes) -> str:
    if b"\x00" in data[:65536]:
        raise GolfError(f"{rel}: binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GolfError(f"{rel}: not UTF-8 text (byte {exc.start})") from None


def _walk(root: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and depth < MAX_DEPTH - 1)
        out.extend(Path(dirpath) / f for f in sorted(filenames))
    return out


def _is_log(rel: str) -> bool:
    name = Path(rel).name.lower()
    return name.endswith(LOG_SUFFIXES) and not name.startswith(NOT_LOGS)


def _choose_entry(python: Mapping[str, str]) -> str:
    """train_gpt.py, else the one train_gpt*.py (or the one .py) at the top of the folder."""
    top = sorted(p for p in python if "/" not in p)
    if ENTRY_NAME in top:
        return ENTRY_NAME
    for candidates in ([p for p in top if p.startswith("train_gpt")], [p for p in top if p.startswith("train")], top):
        if len(candidates) == 1:
            return candidates[0]
    mains = [p for p in top if "__main__" in python[p]]
    if len(mains) == 1:
        return mains[0]
    raise GolfError(f"no train_gpt.py and several candidate entry files ({', '.join(top) or 'none at the top'}); "
                    "audit the entry file by its path")


def check_meta(meta: Any) -> list[str]:
    """Problems of a parsed submission.json against the records' schema (empty when fine)."""
    if not isinstance(meta, dict):
        return ["submission.json is not a JSON object"]
    problems = [f"missing field {key!r}" for key in REQUIRED if key not in meta]
    for key, types in SCHEMA.items():
        value = meta.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            problems.append(f"{key!r} should be {'/'.join(t.__name__ for t in types)}, got {type(value).__name__}")
    seeds = meta.get("seeds")
    if isinstance(seeds, list) and not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        problems.append("'seeds' should be a list of integers")
    if isinstance(seeds, dict) and not all(str(k).isdigit() for k in seeds):
        problems.append("'seeds' keys should be seed numbers")
    results = meta.get("seed_results")
    if isinstance(results, dict):
        for seed, row in results.items():
            if not isinstance(row, dict):
                problems.append(f"seed_results[{seed!r}] should be an object")
            elif "val_bpb" in row and (isinstance(row["val_bpb"], bool) or not isinstance(row["val_bpb"], (int, float))):
                problems.append(f"seed_results[{seed!r}].val_bpb should be a number")
    return problems


def submission_from_files(files: Mapping[str, str], root: Path = Path("."), entry: str | None = None) -> Submission:
    """A Submission from in-memory files {relative path: text} (tests, rule snippets)."""
    sub = Submission(root=root, entry="")
    for rel, text in sorted(files.items()):
        sub.sizes[rel] = len(text.encode("utf-8"))
        name = Path(rel).name
        if rel.endswith(".py"):
            sub.python[rel] = text
        elif name == "README.md" and "/" not in rel:
            sub.readme = text
        elif name == "submission.json" and "/" not in rel:
            try:
                sub.meta = json.loads(text)
            except json.JSONDecodeError as exc:
                raise GolfError(f"{rel}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
        elif rel.endswith(".json"):
            sub.manifests[rel] = text
        elif _is_log(rel):
            sub.logs[rel] = text
        elif rel.endswith(".sh"):
            sub.commands[rel] = text
    if not sub.python:
        raise GolfError(f"{root}: no Python file to audit")
    sub.entry = entry or _choose_entry(sub.python)
    return sub


def load_submission(path: str | Path, extra_logs: list[str | Path] = ()) -> Submission:
    """Read a submission folder (or a single .py file) from disk, with every input check."""
    path = Path(path)
    if not path.exists():
        raise GolfError(f"{path}: no such file or folder")
    texts: dict[str, str] = {}
    sizes: dict[str, int] = {}
    if path.is_file():
        root, paths = path.parent, [path]
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise GolfError(f"{path}: {path.stat().st_size:,} bytes, over the {MAX_TEXT_BYTES:,}-byte limit")
        if path.suffix != ".py":
            data = path.read_bytes()
            _decode(str(path), data)  # a binary or non-UTF-8 input says so first
            raise GolfError(f"{path}: not a Python file (give a .py file or a submission folder)")
    else:
        if not any(path.glob("*.py")):
            nested = sorted(d.name for d in path.iterdir() if d.is_dir() and any(d.glob("train_gpt*.py")))
            if nested:
                listing = ", ".join(nested[:3]) + (", ..." if len(nested) > 3 else "")
                raise GolfError(f"{path}: holds {len(nested)} submission folder(s) ({listing}), not a submission; "
                                "pass the folders as paths")
        root, paths = path, _walk(path)
        if not paths:
            raise GolfError(f"{path}: empty folder")
    for file in paths:
        rel = file.relative_to(root).as_posix()
        if file.is_symlink() and not file.resolve().is_relative_to(root.resolve()):
            continue  # a link out of the folder (records symlink data shards): not the submission's
        size = file.stat().st_size
        sizes[rel] = size
        if not rel.endswith(TEXT_SUFFIXES):
            continue  # model blobs, tokenizers, images: only their size matters here
        if size > MAX_TEXT_BYTES:
            raise GolfError(f"{rel}: {size:,} bytes, over the {MAX_TEXT_BYTES:,}-byte limit for a text file")
        texts[rel] = _decode(str(path / rel) if path.is_dir() else str(path), file.read_bytes())
    for log in extra_logs:
        log = Path(log)
        if not log.is_file():
            raise GolfError(f"{log}: no such log file")
        if log.stat().st_size > MAX_TEXT_BYTES:
            raise GolfError(f"{log}: over the {MAX_TEXT_BYTES:,}-byte limit")
        texts[f"<log>/{log}"] = _decode(str(log), log.read_bytes())  # named as given: outside the folder
    entry = path.name if path.is_file() else None
    if path.is_dir() and not any(rel.endswith(".py") for rel in texts):
        raise GolfError(f"{path}: no Python file in the folder")
    sub = submission_from_files(texts, root=root, entry=entry)
    for rel, size in sizes.items():
        sub.sizes[rel] = size
    sub.single_file = path.is_file()
    if sub.single_file:  # a lone file: its siblings are not part of what was asked for
        sub.sizes = {rel: size for rel, size in sub.sizes.items() if rel == entry or rel.startswith("<log>/")}
    return sub


def normalize_entry(sub: Submission) -> Normalized:
    """The entry file with shims, indirection and helper modules unwrapped (never executed)."""
    # A lone file may still exec or import its siblings: those are read from disk when referenced.
    files = sub.root if sub.single_file else sub.python
    return normalize_source(sub.python[sub.entry], sub.entry, files)


def build_context(sub: Submission):
    """The static engine's AuditContext of `sub`, with the normalisation attached for the rules."""
    from audit.static.engine import context_from_sources

    normalized = normalize_entry(sub)
    try:
        ctx = context_from_sources(
            {sub.entry: normalized.text},
            root=sub.root,
            logs=sub.logs,
            readme=sub.readme,
            submission=sub.meta,
            other_files=sub.other_files,
            line_maps={sub.entry: normalized.line_map},
            commands=sub.commands,
            trees={sub.entry: normalized.tree} if normalized.tree is not None else None,
        )
    except SyntaxError as exc:  # the entry or a file inlined into it does not parse
        path, line = normalized.line_map(exc.lineno or 0)
        raise GolfError(f"{path}:{line}: syntax error: {exc.msg}") from None
    ctx.normalized = normalized
    ctx.submission_files = sub
    ctx.manifests = dict(sub.manifests)
    return ctx
