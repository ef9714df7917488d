"""The base class of the data-flow rules (PG1xx): each reports the shared FlowAnalysis's violations
of its rule id, so the taint and order analysis runs once per file however many rules read it."""

from __future__ import annotations

from typing import Iterable

from audit.finding import Finding
from audit.static.analysis import FileAnalysis
from audit.static.flow import flow_of
from audit.static.rule import AuditContext, Rule


class FlowRule(Rule):
    """Reports every violation of `rule` that audit.static.flow found in the submission's files."""

    def check(self, ctx: AuditContext) -> Iterable[Finding]:
        for src in ctx.files:
            if not isinstance(src.analysis, FileAnalysis):
                continue
            for v in flow_of(src.analysis).violations:
                if v.rule == self.rule:
                    yield self.finding(src, v.line, v.message, evidence=v.evidence,
                                       severity=v.severity, confidence=v.confidence)
