"""The one Finding type that every audit (static, replay, runner) produces and every report emits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "note")
CONFIDENCES = ("high", "medium", "low")


@dataclass(frozen=True)
class Finding:
    code: str  # stable code, e.g. "PG101"
    rule: str  # rule id of shared/spec/rules.md, e.g. "TTT-1"
    severity: str  # error | warning | note
    confidence: str  # high | medium | low
    path: str  # file the finding points at, relative to the audited folder where possible
    line: int  # 1-based; 0 when the finding is about the folder, not a line
    col: int  # 1-based; 0 when unknown
    message: str
    evidence: str = ""  # the code or log text that proves it

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"bad severity {self.severity!r}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"bad confidence {self.confidence!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_of(findings: list[Finding], error: bool = False) -> str:
    """FAIL when an error-severity finding holds, WARN for warnings only, PASS otherwise."""
    if error:
        return "ERROR"
    if any(f.severity == "error" for f in findings):
        return "FAIL"
    if any(f.severity == "warning" for f in findings):
        return "WARN"
    return "PASS"


@dataclass
class Report:
    """One audited path: its verdict, findings, the replay ledger summary and statistics."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    replay: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the audit could not run (bad input): verdict ERROR

    @property
    def verdict(self) -> str:
        return verdict_of(self.findings, error=self.error is not None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "replay": self.replay,
            "stats": self.stats,
        }
        if self.error is not None:
            out["error"] = self.error
        out["path"] = self.path
        return out
