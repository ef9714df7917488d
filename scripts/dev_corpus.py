"""Run the static audit over the development corpus (shared/corpus/dev.json) and print a table.

Each entry names a commit and a folder of openai/parameter-golf. The folder is extracted with git
from a local mirror into a temporary directory (never into the repository: those files must not be
committed), read with the same loader as `golf audit` (audit.submission: shim unwrapping, logs,
README, submission.json), and audited with every static rule. Each row is scored by
scripts/corpus_score.py: an illegal PR is OK when it FAILs with one of its labelled rule ids among
the error findings (any FAIL when it has no labelled rule), a legal PR when it does not FAIL, and a
disputed PR when it does not FAIL (a WARN is what it deserves). The last line summarises the run.

    .venv/bin/python scripts/dev_corpus.py --git-dir /work/.mirror/openai+parameter-golf/repo \
        [--corpus ../shared/corpus/dev.json | --corpus corpus/holdout.json] [--pr 991 --pr 1004] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.finding import verdict_of  # noqa: E402
from audit.static.engine import load_rules, run_rules  # noqa: E402
from audit.submission import build_context, load_submission  # noqa: E402
from scripts.corpus_score import Scored, outcome_of, summary_line  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "dev.json"


def extract(git_dir: str, sha: str, folder: str, dest: Path) -> None:
    """Write every file of `folder` at `sha` under `dest` (git ls-tree + git show, no checkout)."""
    names = subprocess.run(
        ["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", sha, folder + "/"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    for name in filter(None, names):
        shown = subprocess.run(["git", "--git-dir", git_dir, "show", f"{sha}:{name}"], capture_output=True)
        if shown.returncode != 0:  # a blob the mirror does not hold (large model files): skip it
            print(f"  note: {name} is not in the mirror, audited without it", file=sys.stderr)
            continue
        data = shown.stdout
        out = dest / name[len(folder) + 1:]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


def audit_entry(git_dir: str, entry: dict, rules) -> tuple[str, list, float]:
    with tempfile.TemporaryDirectory(prefix=f"pr{entry['pr']}_") as tmp:
        extract(git_dir, entry["sha"], entry["folder"], Path(tmp))
        t0 = time.process_time()
        ctx = build_context(load_submission(tmp))
        findings = run_rules(ctx, rules)
        return verdict_of(findings), findings, time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--git-dir", required=True, help="git dir of an openai/parameter-golf mirror")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--pr", type=int, action="append", help="only these PRs")
    parser.add_argument("--verbose", action="store_true", help="print every finding")
    args = parser.parse_args(argv)
    entries = json.loads(Path(args.corpus).read_text())["entries"]
    rules = load_rules()
    scored: list[Scored] = []
    print(f"{'PR':>6} {'label':8} {'expected':18} {'verdict':7} {'cpu s':>6}  found (error/warning)  result")
    for entry in entries:
        if args.pr and entry["pr"] not in args.pr:
            continue
        try:
            verdict, findings, cpu = audit_entry(args.git_dir, entry, rules)
        except Exception as exc:  # noqa: BLE001 - a row that could not be audited is a miss, not a crash
            verdict, findings, cpu = f"ERROR: {exc}", [], 0.0
        blocking = sorted({f.rule for f in findings if f.severity != "note"})
        errors = {f.rule for f in findings if f.severity == "error"}
        row = Scored(entry["pr"], entry["label"], outcome_of(entry["label"], entry["rules"], verdict, errors))
        scored.append(row)
        print(f"{entry['pr']:>6} {entry['label']:8} {','.join(entry['rules']) or '-':18} {verdict:7} {cpu:6.2f}  "
              f"{','.join(blocking) or '-':20}  {'OK' if row.ok else 'MISS'} ({row.outcome})")
        if args.verbose:
            for f in findings:
                print(f"         {f.severity:7} {f.code} {f.rule:8} {f.path}:{f.line} {f.message[:140]}")
    misses = sum(not row.ok for row in scored)
    print(f"{misses} miss(es)")
    print(summary_line(scored))
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
