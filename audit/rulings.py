"""Dated rulings: rules of the challenge whose enforcement began on a known day, and what that does
to a finding's severity given the submission's date.

A Ruling names the rule id, the finding codes it governs, the day from which it was enforced, who
ruled and where, how that day was established, and `before`: the severity of a governed finding for
a submission dated before that day (None when the ruling was applied retroactively, so the date does
not change the severity). `apply_rulings` rewrites findings accordingly and says in each message
which ruling applied and why; `rulings_at(date)` lists the rulings in force on a day (for reports);
`submission_date` finds a submission's date (folder date prefix, else submission.json "date", else a
date given by the caller, e.g. a PR's); `stat1_variants_at` / `stat1_severity` hold the policy of
the two significance rules (STAT-1) for the static audit and `golf validate`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable

from audit.finding import Finding

DATE_ENV = "GOLF_SUBMISSION_DATE"  # a date for submissions whose folder and submission.json give none
_DATE_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Ruling:
    rule: str  # rule id of shared/spec/rules.md
    codes: tuple[str, ...]  # the finding codes it governs
    since: dt.date  # enforced for submissions dated on or after this day
    who: str  # the maintainer and thread
    summary: str
    dated_by: str  # how `since` was established (facts of the repository)
    before: str | None = None  # severity for a submission dated earlier; None = retroactive, unchanged
    effect: str = ""  # what the date changes when it is not the severity of one finding


    @property
    def retroactive(self) -> bool:
        return self.before is None


_STAT1_EFFECT = ("the date decides which significance rules are in force; failing both tests is an error, failing "
                 "only the 0.005-nat rule a warning on any date (rules.md D1)")

FRONTIER_PRACTICE = Ruling(
    rule="STAT-1", codes=("PG016", "PG911"), since=dt.date(2026, 4, 28), who="cocohearts on #1900/#1902",
    summary="one-sided Welch p < 0.25 against the chronological frontier replaces the 0.005-nat rule",
    dated_by="#1900's leaderboard update is dated 2026-04-28; the README then cites p-values of earlier rows",
    effect=_STAT1_EFFECT,
)

RULINGS: tuple[Ruling, ...] = (
    Ruling(
        rule="STAT-1", codes=("PG016", "PG911"), since=dt.date(2026, 3, 18), who="the challenge README",
        summary="a record beats the previous one by >= 0.005 nats at p < 0.01",
        dated_by="the README's submission rules at launch (2026-03-18)", effect=_STAT1_EFFECT,
    ),
    Ruling(
        rule="CALIB-1", codes=("PG111",), since=dt.date(2026, 3, 22), who="valerio-oai on #728 (Agora rulings)",
        summary="no GPTQ / quantisation calibration on validation tokens not yet scored",
        dated_by="the March 22 ban; later PRs calibrating on eval tokens were closed, earlier ones too",
    ),
    Ruling(
        rule="TTT-2", codes=("PG102",), since=dt.date(2026, 3, 27), who="valerio-oai on #677 (mass closure)",
        summary="no two-pass rescoring: report the first score s_0, not a re-score after adapting",
        dated_by="the mass closure of 2026-03-27 (rules.md B1) closed PRs opened before it as well",
    ),
    Ruling(
        rule="DOC-1", codes=("PG113",), since=dt.date(2026, 4, 27), who="cocohearts on #1797",
        summary="previous-token mixing (SmearGate) masks document (BOS) boundaries",
        dated_by="#1797's last commit before the audit is 2026-04-24T02:01Z; the first BOS-fixed resubmission "
                 "(#1851, folder 2026-04-27) was pushed 2026-04-27T06:53Z; #1667 (2026-04-16) merged unmasked",
        before="note",
    ),
    FRONTIER_PRACTICE,
)


def rulings_at(date: dt.date | None, rule: str | None = None) -> list[Ruling]:
    """The rulings in force on `date` (all when None), optionally of one rule id."""
    return [r for r in RULINGS if (date is None or r.since <= date) and (rule is None or r.rule == rule)]


def rulings_of(code_or_rule: str) -> list[Ruling]:
    """Every ruling that governs a finding code or a rule id (for `golf explain` and the docs)."""
    key = code_or_rule.upper()
    return [r for r in RULINGS if key == r.rule or key in r.codes]


def _parse_date(text: Any) -> dt.date | None:
    match = _DATE_PREFIX.match(str(text or "").strip())
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def submission_date(folder_name: str, meta: dict | None, given: dt.date | str | None = None) -> tuple[dt.date | None, str]:
    """(date, where it came from): the folder's YYYY-MM-DD prefix, else submission.json "date", else
    `given` (or the GOLF_SUBMISSION_DATE environment variable), else (None, "unknown")."""
    if date := _parse_date(folder_name):
        return date, f"folder name {folder_name}"
    if isinstance(meta, dict) and (date := _parse_date(meta.get("date"))):
        return date, f'submission.json date "{meta.get("date")}"'
    given = given if given is not None else os.environ.get(DATE_ENV)
    if isinstance(given, dt.date):
        return given, "the date given"
    if date := _parse_date(given):
        return date, "the date given"
    return None, "unknown"


def context_date(ctx) -> tuple[dt.date | None, str]:
    """The date of the submission an AuditContext describes (its folder name, submission.json, env)."""
    return submission_date(ctx.root.name if ctx.root else "", ctx.submission, getattr(ctx, "given_date", None))


def apply_rulings(findings: Iterable[Finding], date: dt.date | None, source: str) -> list[Finding]:
    """Each finding governed by a dated, non-retroactive ruling gets the severity of the submission's
    date and a message saying which ruling applied and why. Undated submissions keep the severity
    (the ruling is assumed to apply) and say so."""
    out = []
    for finding in findings:
        ruling = next((r for r in RULINGS if finding.code in r.codes and not r.retroactive), None)
        if ruling is None or finding.severity == "note":  # already a note (e.g. unreachable code): unchanged
            out.append(finding)
            continue
        lead = f"{ruling.rule} {ruling.summary} is enforced from {ruling.since} ({ruling.who})"
        if date is None:
            why = f"{lead}; the submission's date is unknown: {finding.severity} as if it applied"
        elif date < ruling.since:
            finding = replace(finding, severity=ruling.before)
            why = f"{lead}; this submission is dated {date} ({source}), before it: {ruling.before}"
        else:
            why = f"{lead}; this submission is dated {date} ({source}): {finding.severity}"
        out.append(replace(finding, message=f"{finding.message} [{why}]"))
    return out


# -- STAT-1: the two significance rules --------------------------------------------------------------

def stat1_variants_at(date: dt.date | None) -> list[str]:
    """The significance rules in force on `date`: the README's ("readme") always, the frontier
    practice ("frontier") from 2026-04-28; both when the date is unknown."""
    if date is not None and date < FRONTIER_PRACTICE.since:
        return ["readme"]
    return ["readme", "frontier"]


def stat1_severity(passed: dict[str, bool | None], date: dt.date | None) -> tuple[str | None, str]:
    """(severity, why) of a significance result {rule: passed} for a submission dated `date`; severity
    None when a test could not be computed (fewer than 2 seeds, zero variance).

    Failing every rule in force is an error once the frontier practice (p < 0.25 against the
    chronological frontier) was applied, from 2026-04-28. Before that day the README rule was the
    only one, and maintainers merged records that missed it, some not even better than a record
    submitted days earlier but merged later (rules.md D1: fewer than 15 % met it; the verdict policy
    lists the STAT-1 threshold among the inconsistently applied rules): a warning. Failing the README
    rule while passing p < 0.25 is a warning on any date."""
    if any(passed.get(rule) is None for rule in ("readme", "frontier")):
        return None, "the t-test cannot be computed"
    variants = stat1_variants_at(date)
    on = f"on {date}" if date else "(date unknown)"
    if passed["readme"] and passed["frontier"]:
        return "note", f"passes the README's 0.005 nats at p < 0.01 and p < 0.25 ({' and '.join(variants)} in force {on})"
    if not passed["frontier"]:
        if "frontier" in variants:
            return "error", f"fails both rules in force {on}: README 0.005 nats at p < 0.01 and p < 0.25"
        return "warning", (f"fails the README rule, the only one in force {on}, and is not an improvement even at "
                           "p < 0.25 (the practice from 2026-04-28); records of that time were merged without "
                           "either test (rules.md D1)")
    if "frontier" in variants:
        return "warning", f"passes p < 0.25 (in force {on}) but not the README's 0.005 nats at p < 0.01"
    return "warning", (f"fails the README rule, the only one in force {on}; merged records of that time often did "
                       "(rules.md D1) and the frontier was re-judged at p < 0.25 from 2026-04-28, which it passes")
