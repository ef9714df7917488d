"""Every replay / runner finding code is catalogued once, with the rule id its findings carry."""

import re
from pathlib import Path

from audit.codes import DYNAMIC_CODES
from golf.cli import main

ROOT = Path(__file__).resolve().parent.parent
EMITTED = re.compile(r'_finding\(\s*"((?:RP|PG9)\d{2,3})",\s*"([A-Z0-9-]+)"')
# what the emulation could not provide stops the run as a gap, reported as an FMT-1 finding of its code
GAP = re.compile(r'(?:EmulationGap|\.gap)\(\s*"(RP\d{3})"')


def test_every_emitted_code_is_catalogued_with_its_rule():
    emitted = set()
    for folder in ("audit/replay", "audit/runner"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            emitted |= set(EMITTED.findall(text)) | {(code, "FMT-1") for code in GAP.findall(text)}
    assert emitted, "no finding constructor found: the pattern is out of date"
    for code, rule in emitted:
        assert code in DYNAMIC_CODES, f"{code} is emitted but not in audit/codes.py"
        assert DYNAMIC_CODES[code].rule == rule, f"{code}: emitted as {rule}, catalogued as {DYNAMIC_CODES[code].rule}"
    assert {c for c, _ in emitted} == set(DYNAMIC_CODES), "audit/codes.py lists codes nothing emits"


def test_an_emulation_gap_is_a_finding_of_its_own_code():
    from audit.replay.invariants import Locator, _check_gaps

    ledgers = [{"gaps": [dict(code=code, what="w", detail=f"detail {code}")]} for code in ("RP070", "RP091")]
    found = _check_gaps(ledgers, Locator(".", "train_gpt.py"))
    assert [(f.code, f.rule, f.severity) for f in found] == [("RP070", "FMT-1", "warning"), ("RP091", "FMT-1", "warning")]


def test_explain_knows_a_replay_code(capsys):
    assert main(["explain", "RP021"]) == 0
    assert "TTT-2" in capsys.readouterr().out
    assert main(["explain", "RP999"]) == 2
