"""What every report format shares: where a finding's file is, the rule catalogue, doc anchors."""

from __future__ import annotations

import inspect
import os
import posixpath
from functools import lru_cache

from audit.finding import Finding, Report

DOCS_PATH = "docs/rules.md"
SEVERITY_ORDER = {"error": 0, "warning": 1, "note": 2}


def docs_url(code: str) -> str:
    """Link to a rule's section of docs/rules.md; GOLF_DOCS_URL sets an absolute base URL."""
    base = os.environ.get("GOLF_DOCS_URL", "").rstrip("/")
    anchor = f"{DOCS_PATH}#{code.lower()}"
    return f"{base}/{anchor}" if base else anchor


def location(report: Report, finding: Finding) -> str:
    """The finding's file as a path from where `golf audit` ran (the audited folder + its path)."""
    root = str(report.stats.get("root", "")) if report.stats else ""
    path = finding.path or ""
    if not path:
        return root or report.path
    if path.startswith("<log>/"):  # a log given with --log: the path is outside the folder
        return path[len("<log>/"):]
    joined = posixpath.normpath(posixpath.join(root, path)) if root else path
    return joined


def real_location(report: Report, finding: Finding) -> tuple[str, int, str]:
    """(file, line, note) on disk: a finding in decoded shim code ("train_gpt.py#decoded", line N)
    points at the exec that carries the shim, and the note says which decoded line it was."""
    virtual = (report.stats or {}).get("virtual_files", {})
    path, line, note = finding.path, finding.line, ""
    hops = 0
    while path in virtual and hops < 8:
        note = note or f" (line {line} of the code decoded from {path.split('#')[0]})"
        path, line = virtual[path]
        hops += 1
    moved = Finding(**{**finding.to_dict(), "path": path, "line": line})
    return location(report, moved), line, note


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.path, f.line, f.code))


@lru_cache(maxsize=1)
def catalogue() -> dict:
    """code -> rule class of every static rule (summary, docstring, severity, references)."""
    from audit.static.engine import load_rules

    return {rule.code: type(rule) for rule in load_rules()}


def rule_summary(finding: Finding) -> str:
    cls = catalogue().get(finding.code)
    return cls.summary if cls is not None else finding.rule


def doc_text(rule_cls) -> str:
    """A rule's class docstring with its indentation removed (Markdown-ready)."""
    return inspect.cleandoc(rule_cls.__doc__ or "")
