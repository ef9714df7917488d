"""A Markdown review comment, ready to paste: the verdict, the findings grouped by severity with the
evidence line of each (file:line and the code), and for a pull request (`golf audit --pr`) its
number, title and date, the record of that date, the significance of its seeds against that record,
and a footer that says what ran (the static audit only, or the replay too)."""

from __future__ import annotations

from audit.finding import Report
from audit.report.common import docs_url, real_location, rule_summary, sorted_findings

ICONS = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔"}
GROUPS = (("error", "Errors"), ("warning", "Warnings"), ("note", "Notes"))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str, limit: int = 300) -> str:
    return _one_line(text, limit).replace("|", "\\|")


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _finding(report: Report, f) -> list[str]:
    where, line, decoded = real_location(report, f)
    at = f"{where}:{line}" if line > 0 else where
    confidence = "" if f.confidence == "high" else f" ({f.confidence} confidence)"
    out = [f"- [{f.code} {f.rule}]({docs_url(f.code)}) `{at}`: {_one_line(f.message, 700)}{decoded}{confidence}"]
    if f.evidence:
        evidence = "\n".join(f.evidence.splitlines()[:6])
        numbered = f"{f.line}: {evidence}" if f.line > 0 and f.path.endswith(".py") and "\n" not in evidence else evidence
        fence = _fence(numbered)
        out += [f"  {fence}", *(f"  {l}" for l in numbered.splitlines()), f"  {fence}"]
    return out


def _findings(report: Report) -> list[str]:
    findings = sorted_findings(report.findings)
    out = []
    for severity, title in GROUPS:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        body = [line for f in group for line in _finding(report, f)]
        if severity == "note":
            out += [f"<details><summary>{title} ({len(group)})</summary>", "", *body, "", "</details>", ""]
        else:
            out += [f"**{title} ({len(group)})**", "", *body, ""]
    if findings:
        seen = {}
        for f in findings:
            seen.setdefault(f.code, f)
        out += ["<details><summary>Why these rules</summary>", ""]
        out += [f"- [{code} {f.rule}]({docs_url(code)}): {_one_line(rule_summary(f))}" for code, f in seen.items()]
        out += ["", "</details>", ""]
    return out


def _bpb(value) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "?"


def _significance(review: dict) -> list[str]:
    candidate, record = review.get("candidate"), review.get("record")
    if candidate is None:
        return [f"Seeds: not found ({review.get('candidate_note') or 'no logs or per-seed results'}).", ""]
    std = f" ± {candidate['std_val_bpb']:.5f}" if candidate.get("std_val_bpb") is not None else ""
    out = [f"Seeds: {candidate['n']}, mean val_bpb {_bpb(candidate['mean_val_bpb'])}{std} "
           f"({', '.join(_bpb(v) for v in candidate['val_bpb'])})."]
    if record is None or not review.get("significance"):
        return out + [""]
    delta = record["val_bpb"] - candidate["mean_val_bpb"]
    out += [f"Improvement on the record: {delta:+.5f} bpb.", "",
            "| Significance rule | In force | Test | p | Result |", "|---|---|---|---|---|"]
    for row in review["significance"]:
        p_value, passed = row.get("p"), row.get("passed")
        result = "n/a" if passed is None else ("passes" if passed else "fails")
        if row.get("note"):
            result += f" ({_cell(row['note'], 80)})"
        in_force = {True: "yes", False: "not yet"}.get(row.get("applied"), "?")
        out.append(f"| {_cell(row.get('label') or row.get('rule', '?'))} | {in_force} | {_cell(row.get('test', ''))} | "
                   f"{'n/a' if p_value is None else f'{p_value:.2g}'} | {result} |")
    return out + [""]


def _review(report: Report) -> list[str]:
    """The facts of one folder of a PR: its date and the rulings in force, the record of that day,
    the seeds and their significance."""
    review = report.stats.get("review") or {}
    out = [f"Dated rulings judged at **{review.get('date') or 'an unknown date'}** ({review.get('date_source')})"
           + (": " + "; ".join(_one_line(r, 200) for r in review["rulings"]) + "." if review.get("rulings") else ".")]
    record = review.get("record")
    if record is None:
        out.append(f"Record of the day: unknown ({review.get('record_note') or 'no leaderboard'}).")
    else:
        seeds = f", {len(record['seeds'])} seeds" if record.get("seeds") else ""
        out.append(f"Record of the day: **{_bpb(record['val_bpb'])}** val_bpb, `{record['folder']}` "
                   f"({_one_line(record['name'], 120)}, merged {record['date']}{seeds}).")
    return out + [""] + _significance(review)


def _one(report: Report) -> list[str]:
    out = [f"### {ICONS.get(report.verdict, '')} **{report.verdict}** `{report.path}`", ""]
    if report.error is not None:
        return out + [f"The audit could not run: {report.error}", ""]
    counts = {s: sum(f.severity == s for f in report.findings) for s in ("error", "warning", "note")}
    source = report.stats.get("config_source")
    out += [f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['note']} note(s)."
            + (f" Configuration from {source}." if source else ""), ""]
    out += _findings(report)
    if report.stats.get("pr"):
        out += _review(report)
    if report.replay:
        out += [f"Replay: {_cell(str(report.replay), 600)}", ""]
    return out


def _header(reports: list[Report]) -> list[str]:
    pr = next((r.stats["pr"] for r in reports if r.stats.get("pr")), None)
    if pr is None:
        return []
    verdicts = [r.verdict for r in reports]
    overall = next((v for v in ("ERROR", "FAIL", "WARN") if v in verdicts), "PASS")
    folders = ", ".join(f"`{r.path}`" for r in reports)
    state = "merged into" if pr.get("merged") else "against"
    out = [f"## golf audit of PR #{pr['number']}: {_one_line(pr['title'], 160)}", "",
           f"**Verdict: {ICONS[overall]} {overall}** for {folders} (head `{pr['head'][:12]}`, "
           f"{state} `{pr['base']}` from `{pr['fork_point'][:12]}`; PR date {pr['date']}, the "
           f"{pr['date_source']}).", ""]
    return out


def _footer(reports: list[Report]) -> str:
    replayed = [r for r in reports if r.replay]
    if not reports:
        ran = "No records folder to audit."
    elif replayed:
        ran = (f"Ran: the static audit and the instrumented replay of the evaluation "
               f"({len(replayed)} of {len(reports)} folder(s)).")
    else:
        ran = "Ran: the static audit only; the submitted code was read, never run."
    return (f"<sub>{ran} Generated by `golf audit`, a reviewer aid: each finding cites its rule; "
            "verify the evidence.</sub>\n")


def render(reports: list[Report]) -> str:
    lines = _header(reports)
    for report in reports:
        lines += _one(report)
    return "\n".join(lines) + ("\n" if lines else "") + _footer(reports)
