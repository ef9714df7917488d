"""Every static rule's VALID snippets give none of its findings; every INVALID snippet gives one.

The snippets live on the rule classes (audit/static/rules/pgNNN_*.py); this harness runs them all,
and checks the catalogue's own contract (stable unique codes, rule ids, docs, both kinds of snippet).
"""

import re

import pytest

from audit.finding import CONFIDENCES, SEVERITIES
from audit.static.engine import context_from_snippet, load_rules, run_rules

RULES = load_rules()
CASES = [
    pytest.param(rule, kind, i, snippet, id=f"{rule.code}-{kind}-{i}")
    for rule in RULES
    for kind, snippets in (("valid", rule.VALID), ("invalid", rule.INVALID))
    for i, snippet in enumerate(snippets)
]


@pytest.mark.parametrize("rule,kind,index,snippet", CASES)
def test_snippet(rule, kind, index, snippet):
    findings = [f for f in run_rules(context_from_snippet(snippet), [rule]) if f.code == rule.code]
    blocking = [f for f in findings if f.severity != "note"]
    if kind == "valid":
        assert not blocking, f"{rule.code} flags its VALID snippet {index}: {blocking}"
    else:
        assert blocking, f"{rule.code} misses its INVALID snippet {index}"
        for f in blocking:
            assert f.rule == rule.rule and f.line >= 0 and f.message


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_contract(rule):
    assert re.fullmatch(r"PG\d{3}", rule.code)
    assert rule.rule and rule.summary and rule.doc()
    assert rule.severity in SEVERITIES and rule.confidence in CONFIDENCES
    assert rule.VALID and rule.INVALID, "every rule documents a VALID and an INVALID snippet"


def test_codes_are_unique_and_sorted():
    codes = [rule.code for rule in RULES]
    assert codes == sorted(set(codes))
