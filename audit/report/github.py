"""GitHub Actions workflow commands: one `::error file=…,line=…,col=…,title=…::message` per finding.

Escaping follows the runner's rules: in the message %, CR and LF are percent-encoded, in property
values also ':' and ','.
"""

from __future__ import annotations

from audit.finding import Report
from audit.report.common import real_location, sorted_findings

LEVELS = {"error": "error", "warning": "warning", "note": "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render(reports: list[Report]) -> str:
    lines = []
    for report in reports:
        if report.error is not None:
            lines.append(f"::error file={_prop(report.path)},title={_prop('golf audit')}::{_data(report.error)}")
            continue
        for f in sorted_findings(report.findings):
            where, line, decoded = real_location(report, f)
            props = [f"file={_prop(where)}"]
            if line > 0:
                props.append(f"line={line}")
                if f.col > 0 and not decoded:
                    props.append(f"col={f.col}")
            props.append(f"title={_prop(f'{f.code} {f.rule}')}")
            message = f.message + decoded + (f" [confidence: {f.confidence}]" if f.confidence != "high" else "")
            lines.append(f"::{LEVELS[f.severity]} {','.join(props)}::{_data(message)}")
    return "\n".join(lines) + ("\n" if lines else "")
