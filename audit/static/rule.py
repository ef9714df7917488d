"""The rule contract of the static audit: one rule = one file = one class (the Fixit pattern).

A rule declares its stable code (PGNNN), the rule id of shared/spec/rules.md it enforces, severity,
confidence, references (PR / issue numbers of openai/parameter-golf), a summary message, its
documentation (the class docstring, printed by `golf explain`), and VALID / INVALID snippets that the
test suite runs: every VALID snippet must produce no finding of the rule, every INVALID at least one.
A snippet is either the source of a train_gpt.py, or a dict {relative path: text} for rules that
read several files (logs, README.md, submission.json, helper modules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Union

import libcst as cst

from audit.finding import Finding

Snippet = Union[str, dict]
NON_RECORD = re.compile(r"non[-_ ]?record", re.IGNORECASE)  # "non-record", "non_record_16mb", "Non Record"


@dataclass
class SourceFile:
    """One Python file as the rules see it: normalised (shims unwrapped) and parsed once."""

    path: str  # relative to the audited folder
    text: str  # the normalised text that was parsed
    module: cst.Module
    # maps a 1-based line of `text` to (original relative path, original 1-based line)
    line_map: Callable[[int], tuple[str, int]] = lambda line: ("", line)
    analysis: Any = None  # per-file analysis built once by the engine and shared by all rules


@dataclass
class AuditContext:
    """Everything a rule may read about one audited submission. Never holds imported code."""

    root: Path
    files: list[SourceFile]  # the entry file (train_gpt.py) first, then helper modules
    config: dict[str, str] = field(default_factory=dict)  # hyperparameters as logged (or defaults)
    config_source: str = "defaults"  # "log:<name>" when read from a run log
    logs: dict[str, str] = field(default_factory=dict)  # log file name -> text
    readme: str | None = None
    submission: dict | None = None  # parsed submission.json
    other_files: list[str] = field(default_factory=list)  # non-Python files shipped in the folder

    @property
    def entry(self) -> SourceFile | None:
        return self.files[0] if self.files else None

    @property
    def non_record(self) -> bool:
        """A non-record submission: in a records/track_non_record_* folder, or so described by its
        submission.json (name, track, submission_type). The 10-minute track's time budgets and its
        significance rule do not apply to it (the non-record track allows unlimited compute)."""
        if any(part.startswith("track_non_record") for part in self.root.parts):
            return True
        meta = self.submission if isinstance(self.submission, dict) else {}
        described = " ".join(str(meta.get(key, "")) for key in ("name", "track", "submission_type"))
        return bool(NON_RECORD.search(described))


class Rule:
    """Base class of every static rule; subclasses set the class attributes and implement check()."""

    code: ClassVar[str]
    rule: ClassVar[str]
    severity: ClassVar[str] = "error"
    confidence: ClassVar[str] = "high"
    record_track_only: ClassVar[bool] = False  # a 10-minute-track budget: only a note on a non-record submission
    references: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str]
    VALID: ClassVar[list[Snippet]] = []
    INVALID: ClassVar[list[Snippet]] = []

    def check(self, ctx: AuditContext) -> Iterable[Finding]:
        raise NotImplementedError

    # -- helpers shared by all rules -------------------------------------------------------
    def finding(
        self,
        source: SourceFile | None,
        line: int,
        message: str,
        evidence: str = "",
        col: int = 1,
        path: str | None = None,
        severity: str | None = None,
        confidence: str | None = None,
    ) -> Finding:
        """A Finding of this rule at `line` of `source` (mapped back to the original file)."""
        if source is not None and line > 0:
            orig_path, orig_line = source.line_map(line)
            path = path or orig_path or source.path
            line = orig_line
        return Finding(
            code=self.code,
            rule=self.rule,
            severity=severity or self.severity,
            confidence=confidence or self.confidence,
            path=path or "",
            line=line,
            col=col if line > 0 else 0,
            message=message,
            evidence=evidence,
        )

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()


def iter_findings(rules: Iterable[Rule], ctx: AuditContext) -> Iterator[Finding]:
    for rule in rules:
        yield from rule.check(ctx)
