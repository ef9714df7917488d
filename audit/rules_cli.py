"""`golf rules`: the rule catalogue as a table (code, rule id, severity, confidence, summary)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    from audit.docs import rule_classes

    classes = rule_classes()
    if args.format == "json":
        rows = [{"code": c.code, "rule": c.rule, "severity": c.severity, "confidence": c.confidence,
                 "summary": c.summary, "references": list(c.references)} for c in classes]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(classes)} rules · golf explain CODE for one", expand=True)
    for column in ("code", "rule", "severity", "confidence"):
        table.add_column(column, no_wrap=True)
    table.add_column("summary", ratio=1)
    for c in classes:
        table.add_row(c.code, c.rule, c.severity, c.confidence, c.summary)
    Console().print(table)
    from audit.codes import DYNAMIC_CODES

    dynamic = Table(title="replay (RPnnn) and validation (PG9nn) codes", expand=True)
    for column in ("code", "rule", "from"):
        dynamic.add_column(column, no_wrap=True)
    dynamic.add_column("summary", ratio=1)
    for d in DYNAMIC_CODES.values():
        dynamic.add_row(d.code, d.rule, d.source, d.summary)
    Console().print(dynamic)
    return 0
