"""`golf explain CODE`: one rule's documentation, references and VALID/INVALID snippets.

CODE is a rule code (PG101) or a rule id (TTT-1: every code enforcing it); unknown -> exit 2.
"""

from __future__ import annotations

import argparse

from golf.errors import GolfError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", metavar="CODE", help="a rule code (PG101) or rule id (TTT-1)")
    parser.add_argument("--no-snippets", action="store_true", help="leave out the VALID/INVALID snippets")


def run(args: argparse.Namespace) -> int:
    from audit.docs import rule_classes, rule_markdown

    wanted = args.code.strip().upper()
    classes = rule_classes()
    chosen = [c for c in classes if c.code == wanted] or [c for c in classes if c.rule.upper() == wanted]
    if not chosen:
        from audit.codes import DYNAMIC_CODES

        dynamic = [c for c in DYNAMIC_CODES.values() if wanted in (c.code, c.rule.upper())]
        if dynamic:
            from audit.docs import rulings_markdown

            for c in dynamic:
                print(f"{c.code} {c.rule} ({c.source}): {c.summary}")
                if dated := rulings_markdown(c.code):
                    print(dated)
            return 0
        raise GolfError(f"unknown rule code {args.code!r} (`golf rules` lists them)")
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console()
    for cls in chosen:
        text = rule_markdown(cls, heading="#", snippets=not args.no_snippets)
        console.print(Markdown(text.split("\n", 1)[1]))  # the anchor line is for the docs page only
    return 0
