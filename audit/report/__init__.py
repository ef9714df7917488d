"""Report emitters of the one Finding/Report type: text (rich), json, sarif, github, markdown."""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "github", "markdown")


def render(reports, fmt: str) -> str:
    """The machine-format text of `reports` (a list of audit.finding.Report) in format `fmt`."""
    if fmt == "json":
        from audit.report.json_report import render as emit
    elif fmt == "sarif":
        from audit.report.sarif import render as emit
    elif fmt == "github":
        from audit.report.github import render as emit
    elif fmt == "markdown":
        from audit.report.markdown import render as emit
    elif fmt == "text":
        from audit.report.text import render_plain as emit
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return emit(reports)
