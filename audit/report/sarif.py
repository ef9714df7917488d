"""SARIF 2.1.0: one run per audited path, with the rule metadata of every code it reports."""

from __future__ import annotations

import json

import golf
from audit.finding import Report
from audit.report.common import catalogue, doc_text, docs_url, real_location, sorted_findings

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "note": "note"}
RANK = {"high": 90.0, "medium": 60.0, "low": 30.0}  # SARIF rank: how sure the tool is, 0-100


def _rule_descriptor(code: str, rule_id: str) -> dict:
    cls = catalogue().get(code)
    summary = cls.summary if cls is not None else rule_id
    descriptor = {
        "id": code,
        "name": rule_id,
        "shortDescription": {"text": summary},
        "helpUri": docs_url(code),
        "properties": {"rule": rule_id},
    }
    if cls is not None:
        doc = doc_text(cls) or summary
        descriptor["fullDescription"] = {"text": doc}
        descriptor["help"] = {"text": doc, "markdown": doc}
        descriptor["defaultConfiguration"] = {"level": LEVELS[cls.severity]}
        descriptor["properties"]["references"] = list(cls.references)
        descriptor["properties"]["confidence"] = cls.confidence
    return descriptor


def _run(report: Report) -> dict:
    findings = sorted_findings(report.findings)
    codes: dict[str, str] = {}
    for f in findings:
        codes.setdefault(f.code, f.rule)
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for f in findings:
        where, line, decoded = real_location(report, f)
        region = {}
        if line > 0:
            region["startLine"] = line
            region["startColumn"] = max(f.col, 1) if not decoded else 1
            if f.evidence and not decoded:
                region["snippet"] = {"text": f.evidence}
        physical = {"artifactLocation": {"uri": where}}
        if region:
            physical["region"] = region
        results.append({
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": LEVELS[f.severity],
            "rank": RANK[f.confidence],
            "message": {"text": f"{f.rule}: {f.message}{decoded}"},
            "locations": [{"physicalLocation": physical}],
            "properties": {"rule": f.rule, "confidence": f.confidence},
        })
    invocation = {"executionSuccessful": report.error is None}
    if report.error is not None:
        invocation["toolExecutionNotifications"] = [{"level": "error", "message": {"text": report.error}}]
    return {
        "tool": {"driver": {
            "name": "golf audit",
            "version": golf.__version__,
            "informationUri": docs_url("").rstrip("#"),
            "rules": [_rule_descriptor(code, rule_id) for code, rule_id in codes.items()],
        }},
        "invocations": [invocation],
        "results": results,
        "properties": {"path": report.path, "verdict": report.verdict, "stats": report.stats},
    }


def render(reports: list[Report]) -> str:
    log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [_run(r) for r in reports]}
    return json.dumps(log, indent=2, default=str) + "\n"
