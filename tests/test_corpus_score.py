"""The corpus scoring policy (scripts/corpus_score.py) on synthetic verdicts: no git, no mirror, no audit."""

import pytest

from scripts.corpus_score import Scored, outcome_of, summary, summary_line


@pytest.mark.parametrize(
    "label, rules, verdict, errors, outcome, ok",
    [
        ("illegal", ["TTT-1"], "FAIL", {"TTT-1", "C2"}, "right-rule", True),
        ("illegal", ["TTT-1", "DATA-1"], "FAIL", {"DATA-1"}, "right-rule", True),
        ("illegal", [], "FAIL", {"BUD-T"}, "right-rule", True),
        ("illegal", ["C1"], "FAIL", {"C2"}, "wrong-rule", False),
        ("illegal", ["C1"], "WARN", set(), "missed", False),
        ("illegal", ["C1"], "PASS", set(), "missed", False),
        ("illegal", ["C1"], "ERROR: bad folder", set(), "missed", False),
        ("legal", [], "PASS", set(), "ok", True),
        ("legal", [], "WARN", set(), "ok", True),
        ("legal", [], "FAIL", {"C2"}, "false-fail", False),
        ("legal", [], "ERROR: bad folder", set(), "error", False),
        ("disputed", ["TTT-4"], "WARN", set(), "warn", True),
        ("disputed", ["TTT-4"], "PASS", set(), "pass", True),
        ("disputed", ["TTT-4"], "FAIL", {"TTT-4"}, "fail", False),
        ("disputed", [], "ERROR: x", set(), "error", False),
    ],
)
def test_outcome_policy(label, rules, verdict, errors, outcome, ok):
    got = outcome_of(label, rules, verdict, errors)
    assert got == outcome
    assert Scored(1, label, got).ok is ok


def test_unknown_label_is_refused():
    with pytest.raises(ValueError):
        outcome_of("maybe", [], "PASS", set())


def test_summary_counts_and_percentages():
    rows = [
        Scored(1, "illegal", "right-rule"),
        Scored(2, "illegal", "right-rule"),
        Scored(3, "illegal", "wrong-rule"),
        Scored(4, "illegal", "missed"),
        Scored(5, "legal", "ok"),
        Scored(6, "legal", "false-fail"),
        Scored(7, "legal", "error"),
        Scored(8, "disputed", "warn"),
        Scored(9, "disputed", "fail"),
        Scored(10, "disputed", "pass"),
    ]
    s = summary(rows)
    assert (s["illegal"], s["illegal_right_rule"], s["illegal_wrong_rule"], s["illegal_missed"]) == (4, 2, 1, 1)
    assert (s["illegal_right_rule_pct"], s["illegal_missed_pct"]) == ("50 %", "25 %")
    assert (s["legal"], s["legal_false_fail"], s["legal_error"]) == (3, 1, 1)
    assert (s["disputed"], s["disputed_fail"], s["disputed_warn"], s["disputed_pass"]) == (3, 1, 1, 1)
    assert s["misses"] == 5  # wrong-rule, missed, false-fail, error, disputed fail
    line = summary_line(rows)
    assert "illegal named right rule 2/4 (50 %)" in line
    assert "missed (WARN/PASS/ERROR) 1 (25 %)" in line
    assert "legal false FAIL 1/3 (+1 ERROR)" in line
    assert "disputed FAIL 1/3 (WARN 1, PASS 1)" in line


def test_summary_of_a_corpus_without_illegal_entries():
    line = summary_line([Scored(1, "legal", "ok")])
    assert "0/0 (n/a)" in line and "legal false FAIL 0/1;" in line
