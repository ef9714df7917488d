"""Score audit verdicts against the labels of a corpus (dev.json, corpus/holdout.json) and summarise them.

Pure functions on (label, labelled rules, verdict, error rule ids): no git, no audit, no I/O, so the
scoring policy is tested on its own (tests/test_corpus_score.py).

Policy, per label:
  illegal   right-rule  FAIL and an error finding names one of the labelled rules (any FAIL when the
                        entry labels no rule): OK
            wrong-rule  FAIL, but for other rules only: a miss (the reviewer is sent to the wrong code)
            missed      WARN, PASS or ERROR: a miss
  legal     ok          PASS or WARN
            false-fail  FAIL: a miss
            error       the audit could not run: a miss
  disputed  warn        WARN: OK, what a disputed PR deserves (the finding cites the precedent)
            pass        PASS: OK (the issue counts only a FAIL as wrong on a disputed PR), shown apart
            fail        FAIL: a miss (maintainers merged or never ruled the mechanism)
            error       the audit could not run: a miss
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

LABELS = ("legal", "illegal", "disputed")
OK_OUTCOMES = {"right-rule", "ok", "warn", "pass"}


@dataclass(frozen=True)
class Scored:
    pr: int
    label: str
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES


def outcome_of(label: str, labelled_rules: list[str], verdict: str, error_rules: set[str]) -> str:
    """The outcome name of one audited entry under the policy of the module docstring."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}")
    failed = verdict == "FAIL"
    errored = verdict.startswith("ERROR")
    if label == "illegal":
        if not failed:
            return "missed"
        return "right-rule" if not labelled_rules or error_rules & set(labelled_rules) else "wrong-rule"
    if errored:
        return "error"
    if label == "legal":
        return "false-fail" if failed else "ok"
    return "fail" if failed else ("warn" if verdict == "WARN" else "pass")


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.0f} %" if whole else "n/a"


def summary(scored: list[Scored]) -> dict[str, object]:
    """Counts per label and outcome, and the four figures the issue reports."""
    by_label = Counter(s.label for s in scored)
    outcomes = Counter((s.label, s.outcome) for s in scored)
    illegal = by_label["illegal"]
    return {
        "entries": len(scored),
        "misses": sum(not s.ok for s in scored),
        "illegal": illegal,
        "illegal_right_rule": outcomes["illegal", "right-rule"],
        "illegal_wrong_rule": outcomes["illegal", "wrong-rule"],
        "illegal_missed": outcomes["illegal", "missed"],
        "illegal_right_rule_pct": _percent(outcomes["illegal", "right-rule"], illegal),
        "illegal_missed_pct": _percent(outcomes["illegal", "missed"], illegal),
        "legal": by_label["legal"],
        "legal_false_fail": outcomes["legal", "false-fail"],
        "legal_error": outcomes["legal", "error"],
        "disputed": by_label["disputed"],
        "disputed_fail": outcomes["disputed", "fail"],
        "disputed_warn": outcomes["disputed", "warn"],
        "disputed_pass": outcomes["disputed", "pass"],
    }


def summary_line(scored: list[Scored]) -> str:
    """One line: illegal named-right-rule %, illegal missed %, legal false FAILs, disputed FAILs."""
    s = summary(scored)
    legal_errors = f" (+{s['legal_error']} ERROR)" if s["legal_error"] else ""
    return (
        f"illegal named right rule {s['illegal_right_rule']}/{s['illegal']} ({s['illegal_right_rule_pct']}), "
        f"wrong rule {s['illegal_wrong_rule']}, missed (WARN/PASS/ERROR) {s['illegal_missed']} "
        f"({s['illegal_missed_pct']}); legal false FAIL {s['legal_false_fail']}/{s['legal']}{legal_errors}; "
        f"disputed FAIL {s['disputed_fail']}/{s['disputed']} (WARN {s['disputed_warn']}, PASS {s['disputed_pass']})"
    )
