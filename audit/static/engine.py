"""The static audit engine: discovers the rules, builds one AuditContext per submission, runs them.

`context_from_sources` takes the normalised Python sources of a folder (the folder loader of
audit/normalize.py + audit/submission.py calls it), parses each source once, attaches the shared
FileAnalysis (audit/static/analysis.py) to SourceFile.analysis and resolves the hyperparameters from
the run logs, the README / run-script commands and the code defaults (audit/static/config.py).
`run_rules` runs the rules and demotes every finding that points into code the configuration makes
unreachable to a note that says why. Nothing from the audited folder is imported or executed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Callable, Iterable

import libcst as cst

import audit.static.rules as rules_pkg
from audit.finding import Finding
from audit.rulings import apply_rulings, context_date
from audit.static.analysis import FileAnalysis, Index, parse_python
from audit.static.config import Config
from audit.static.inert import inert_lines
from audit.static.rule import AuditContext, Rule, Snippet, SourceFile

ENTRY_NAME = "train_gpt.py"
LOG_SUFFIXES = (".log", ".txt")
COMMAND_FILES = ("README.md", "run.sh")  # where run commands with NAME=value env assignments live


class ParsedSource(SourceFile):
    """A SourceFile whose libcst module is parsed on first use.

    The analysis every rule shares is built from the stdlib ast (see analysis.py), so a rule set that
    never reads `.module` never pays libcst's parse (about 0.14 s per 1,000 lines).
    """

    _module: cst.Module | None = None

    @property
    def module(self) -> cst.Module:
        if self._module is None:
            self._module = cst.parse_module(self.text)
        return self._module

    @module.setter
    def module(self, value: cst.Module | None) -> None:
        self._module = value


def load_rules() -> list[Rule]:
    """One instance of every rule class in audit/static/rules/pg*.py, sorted by code."""
    found: dict[str, Rule] = {}
    for info in pkgutil.iter_modules(rules_pkg.__path__):
        if not info.name.startswith("pg"):
            continue
        module = importlib.import_module(f"{rules_pkg.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Rule) and cls is not Rule and cls.__module__ == module.__name__:
                if cls.code in found:
                    raise RuntimeError(f"rule code {cls.code} defined twice ({info.name})")
                found[cls.code] = cls()
    return [found[code] for code in sorted(found)]


def _entry_first(paths: Iterable[str]) -> list[str]:
    def rank(path: str) -> tuple[int, str]:
        name = Path(path).name
        if path == ENTRY_NAME:
            return (0, path)
        if name.startswith("train_gpt") and "/" not in path:
            return (1, path)
        return (2, path)

    return sorted(paths, key=rank)


def context_from_sources(
    sources: dict[str, str],
    root: Path = Path("."),
    logs: dict[str, str] | None = None,
    readme: str | None = None,
    submission: dict | None = None,
    other_files: list[str] | None = None,
    line_maps: dict[str, Callable[[int], tuple[str, int]]] | None = None,
    commands: dict[str, str] | None = None,
    trees: dict[str, ast.Module] | None = None,
) -> AuditContext:
    """The AuditContext of one submission from its normalised Python sources {relative path: text}.

    `line_maps` maps a normalised line back to (original path, line) per source (from normalize.py);
    `commands` are extra shell texts with env assignments (run.sh); the README is always read;
    `trees` are asts of sources the caller already parsed (the normaliser's, when it changed nothing).
    Raises SyntaxError when a source does not parse (the caller reports it as a GolfError).
    """
    logs = dict(logs or {})
    line_maps = line_maps or {}
    order = _entry_first(sources)
    given = trees or {}
    trees = {path: given.get(path) or parse_python(sources[path], path) for path in order}
    indexes = {path: Index.build(trees[path]) for path in order}
    shell = {"README.md": readme or ""}
    shell.update(commands or {})
    config = Config.build([a for p in order for a in indexes[p].assigns], logs, shell, submission=submission,
                          calls=[c for p in order for cs in indexes[p].calls.values() for c in cs],
                          code=[sources[p] for p in order])
    files = []
    for path in order:
        src = ParsedSource(
            path=path,
            text=sources[path],
            module=None,
            line_map=line_maps.get(path) or (lambda line, _p=path: (_p, line)),
        )
        src.analysis = FileAnalysis.build(path, trees[path], config, indexes[path])
        files.append(src)
    ctx = AuditContext(
        root=root,
        files=files,
        config=config.as_strings(),
        config_source=config.source,
        logs=logs,
        readme=readme,
        submission=submission,
        other_files=list(other_files or []),
    )
    ctx.hyper = config  # the resolver itself, for rules that need a value's source
    ctx.commands = dict(commands or {})  # shell scripts shipped with the submission
    return ctx


def context_from_snippet(snippet: Snippet, root: Path = Path(".")) -> AuditContext:
    """The context of a rule's VALID/INVALID snippet: a train_gpt.py text or {relative path: text}."""
    files = {ENTRY_NAME: snippet} if isinstance(snippet, str) else dict(snippet)
    sources, logs, commands, other = {}, {}, {}, []
    readme, submission = None, None
    for path, text in files.items():
        name = Path(path).name
        if path.endswith(".py"):
            sources[path] = text
        elif name == "README.md":
            readme = text
        elif name == "submission.json":
            submission = json.loads(text)
            other.append(path)
        elif name.endswith(LOG_SUFFIXES):
            logs[path] = text
        else:
            if name in COMMAND_FILES or name.endswith(".sh"):
                commands[path] = text
            other.append(path)
    ctx = context_from_sources(
        sources, root=root, logs=logs, readme=readme, submission=submission, other_files=other, commands=commands
    )
    ctx.manifests = {p: t for p, t in files.items() if p.endswith(".json") and Path(p).name != "submission.json"}
    ctx.snippet_sizes = {p: len(t.encode("utf-8")) for p, t in files.items()}  # every file, as on disk
    return ctx


def run_rules(ctx: AuditContext, rules: list[Rule] | None = None) -> list[Finding]:
    """All findings of `rules` (default: every rule) on `ctx`, sorted by path, line, code.

    A finding inside code the configuration makes unreachable, or inside a channel it makes inert
    (audit/static/inert.py), is kept as a note with the reason.
    """
    rules = load_rules() if rules is None else rules
    unreachable = _unreachable_lines(ctx)
    for where, reason in inert_lines(ctx).items():
        unreachable.setdefault(where, reason)
    findings = []
    for rule in rules:
        off_track = rule.record_track_only and ctx.non_record
        for finding in rule.check(ctx):
            reason = unreachable.get((finding.path, finding.line))
            if finding.severity == "note":
                pass
            elif off_track:
                finding = dataclasses.replace(finding, severity="note", message=(
                    f"{finding.message} [not applicable: a non-record submission, whose track has no 10-minute budget]"))
            elif reason:
                finding = dataclasses.replace(finding, severity="note", message=(
                    f"{finding.message} [{reason if reason.startswith('inert') else 'unreachable: ' + reason}; "
                    f"config from {ctx.config_source}]"))
            findings.append(finding)
    findings = apply_rulings(findings, *context_date(ctx))  # severities of dated rulings follow the date
    return sorted(findings, key=lambda f: (f.path, f.line, f.code, f.col, f.message))


def _unreachable_lines(ctx: AuditContext) -> dict[tuple[str, int], str]:
    """(original path, original line) -> reason, for every line behind a false config guard."""
    out: dict[tuple[str, int], str] = {}
    for src in ctx.files:
        analysis = src.analysis
        if not isinstance(analysis, FileAnalysis):
            continue
        for guard in analysis.guards:
            for line in range(guard.start, guard.end + 1):
                out.setdefault(src.line_map(line), guard.reason)
    return out
