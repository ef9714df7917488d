"""docs/rules.md is generated from the rules and must be current; `golf rules` / `golf explain`."""

import json

from audit.docs import DOCS_FILE, render_catalogue
from audit.static.engine import load_rules
from golf.cli import main


def test_docs_rules_md_is_current():
    assert DOCS_FILE.exists(), "run `python -m audit.docs`"
    assert DOCS_FILE.read_text(encoding="utf-8") == render_catalogue(), "docs/rules.md is stale: run `python -m audit.docs`"


def test_every_rule_has_an_anchor_reports_link_to():
    text = DOCS_FILE.read_text(encoding="utf-8")
    for rule in load_rules():
        assert f'<a id="{rule.code.lower()}"></a>' in text


def test_golf_rules_lists_the_catalogue(capsys):
    assert main(["rules", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["code"] for r in rows] == [r.code for r in load_rules()]
    assert {"code", "rule", "severity", "summary"} <= set(rows[0])
    assert main(["rules"]) == 0
    assert "PG006" in capsys.readouterr().out


def test_golf_explain(capsys):
    assert main(["explain", "pg006"]) == 0
    out = capsys.readouterr().out
    assert "DATA-4" in out and "#606" in out and "Invalid 1" in out
    assert main(["explain", "BYTES-1", "--no-snippets"]) == 0
    out = capsys.readouterr().out
    assert "PG007" in out and "PG008" in out and "Valid 1" not in out
    assert main(["explain", "PG999"]) == 2
    assert "unknown rule code 'PG999'" in capsys.readouterr().err
