"""docs/rules.md, generated from the rule classes: `python -m audit.docs` writes it, `--check`
exits 1 when the committed file is stale (a test runs the check).

Each rule gets a section with a stable anchor (`#pg101`) that reports link to, its metadata, its
documentation and the VALID / INVALID snippets the test suite runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audit.report.common import doc_text

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def _snippet_markdown(snippet) -> str:
    files = {"train_gpt.py": snippet} if isinstance(snippet, str) else dict(snippet)
    parts = []
    for path, text in files.items():
        lang = "python" if path.endswith(".py") else ("json" if path.endswith(".json") else "text")
        parts.append(f"`{path}`\n\n```{lang}\n{text.rstrip()}\n```")
    return "\n\n".join(parts)


def rule_markdown(rule_cls, heading: str = "##", snippets: bool = True) -> str:
    """One rule as Markdown: heading with anchor, metadata, documentation, snippets."""
    refs = ", ".join(rule_cls.references) or "—"
    out = [
        f'<a id="{rule_cls.code.lower()}"></a>',
        f"{heading} {rule_cls.code} {rule_cls.rule}: {rule_cls.summary}",
        "",
        f"*rule* {rule_cls.rule} · *severity* {rule_cls.severity} · *confidence* {rule_cls.confidence} · "
        f"*references* {refs} · *module* `{rule_cls.__module__}`",
        "",
        doc_text(rule_cls),
    ]
    dated = rulings_markdown(rule_cls.code)
    if dated:
        out += ["", dated]
    if snippets:
        for kind, items in (("Valid", rule_cls.VALID), ("Invalid", rule_cls.INVALID)):
            for i, snippet in enumerate(items, 1):
                out += ["", f"**{kind} {i}**", "", _snippet_markdown(snippet)]
    return "\n".join(out)


def rulings_markdown(code: str) -> str:
    """The dated rulings (audit/rulings.py) that govern a code, as a Markdown list ('' when none)."""
    from audit.rulings import rulings_of

    lines = []
    for r in rulings_of(code):
        effect = r.effect or ("applied retroactively: the date does not change the severity" if r.retroactive
                              else f"a submission dated earlier gets a {r.before}")
        lines.append(f"- from {r.since}: {r.summary} ({r.who}); {effect}. Dated by: {r.dated_by}.")
    return "**Dated rulings**\n\n" + "\n".join(lines) if lines else ""


def rule_classes() -> list[type]:
    from audit.static.engine import load_rules

    return [type(rule) for rule in load_rules()]


def render_catalogue() -> str:
    classes = rule_classes()
    out = [
        "# Rule catalogue",
        "",
        "Generated from `audit/static/rules/` by `python -m audit.docs`; do not edit by hand (a test fails when",
        "this file is stale). Rule ids refer to the challenge rules (shared/spec/rules.md); codes are stable and",
        "never reused. `golf explain CODE` prints one section, `golf rules` the table.",
        "",
        "| code | rule | severity | confidence | summary |",
        "|---|---|---|---|---|",
    ]
    for cls in classes:
        out.append(f"| [{cls.code}](#{cls.code.lower()}) | {cls.rule} | {cls.severity} | {cls.confidence} | "
                   f"{cls.summary.replace('|', '/')} |")
    for cls in classes:
        out += ["", rule_markdown(cls)]
    out += ["", dynamic_codes_markdown()]
    out += ["", "### Dated rulings of the validation codes", "", rulings_markdown("PG911")]
    return "\n".join(out) + "\n"


def dynamic_codes_markdown() -> str:
    """The replay's and the runner's codes (audit/codes.py) as one table with anchors."""
    from audit.codes import DYNAMIC_CODES

    out = [
        "## Replay and validation codes",
        "",
        "Findings of `golf audit --replay` (RPnnn) and of `golf validate` / `golf submit` (PG9nn).",
        "",
        "| code | rule | from | summary |",
        "|---|---|---|---|",
    ]
    for c in DYNAMIC_CODES.values():
        out.append(f'| <a id="{c.code.lower()}"></a>{c.code} | {c.rule} | {c.source} | {c.summary} |')
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/rules.md is stale")
    parser.add_argument("--output", type=Path, default=DOCS_FILE)
    args = parser.parse_args(argv)
    text = render_catalogue()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `python -m audit.docs`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(rule_classes())} rules)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
