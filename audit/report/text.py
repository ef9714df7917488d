"""Human output through rich: a verdict panel, a findings table, and the code behind each finding."""

from __future__ import annotations

import io

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from audit.finding import Report
from audit.report.common import location, sorted_findings

STYLES = {"PASS": "bold green", "WARN": "bold yellow", "FAIL": "bold red", "ERROR": "bold magenta"}
SEVERITY_STYLES = {"error": "red", "warning": "yellow", "note": "dim"}
MAX_SNIPPETS = 25  # beyond this the table says enough


def _verdict_panel(report: Report) -> Panel:
    findings = report.findings
    counts = ", ".join(f"{sum(f.severity == s for f in findings)} {s}s" for s in ("error", "warning", "note"))
    lines = [Text(report.verdict, style=STYLES.get(report.verdict, "bold"))]
    if report.error is not None:
        lines.append(Text(report.error))
    else:
        lines.append(Text(counts))
        stats = report.stats or {}
        facts = []
        if stats.get("entry"):
            facts.append(f"entry {stats['entry']}")
        if stats.get("lines"):
            facts.append(f"{stats['lines']} lines audited")
        if stats.get("config_source"):
            facts.append(f"config from {stats['config_source']}")
        if stats.get("seconds") is not None:
            facts.append(f"{stats['seconds']:.2f} s")
        if facts:
            lines.append(Text(" · ".join(facts), style="dim"))
        for note in stats.get("normalization", [])[:6]:
            lines.append(Text(f"normalised: {note}", style="dim"))
    return Panel(Group(*lines), title=f"golf audit {report.path}", border_style=STYLES.get(report.verdict, "white"))


def _table(report: Report) -> Table:
    table = Table(show_lines=True, expand=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("location", overflow="fold", ratio=1)
    table.add_column("message", ratio=3)
    for f in sorted_findings(report.findings):
        where = location(report, f) if f.path.startswith("<log>/") else (f.path or ".")  # the panel names the folder
        where += f":{f.line}" if f.line else ""
        table.add_row(Text(f.severity, style=SEVERITY_STYLES[f.severity]), f.code, f.rule, where,
                      f.message + ("" if f.confidence == "high" else f" ({f.confidence} confidence)"))
    return table


def _snippets(report: Report) -> list:
    out = []
    for f in sorted_findings(report.findings)[:MAX_SNIPPETS]:
        if not f.evidence:
            continue
        lexer = "python" if f.path.endswith(".py") else "text"
        start = f.line if f.line > 0 and lexer == "python" else 1
        out.append(Panel(Syntax(f.evidence, lexer, line_numbers=lexer == "python", start_line=start,
                                word_wrap=True, theme="ansi_dark"),
                         title=f"{f.code} {f.rule} {f.path or '.'}" + (f":{f.line}" if f.line else ""),
                         title_align="left", border_style=SEVERITY_STYLES[f.severity]))
    return out


def print_reports(reports: list[Report], console: Console) -> None:
    for report in reports:
        console.print(_verdict_panel(report))
        if report.findings:
            console.print(_table(report))
            for snippet in _snippets(report):
                console.print(snippet)


def render_plain(reports: list[Report]) -> str:
    """The same output without colour, as text (for --output FILE with --format text)."""
    buffer = io.StringIO()
    print_reports(reports, Console(file=buffer, force_terminal=False, color_system=None, width=120))
    return buffer.getvalue()
