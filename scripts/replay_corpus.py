"""Replay real submissions of openai/parameter-golf (their own train_gpt.py, at toy size) and print a table.

Entries come from a corpus file (shared/corpus/dev.json: commit + folder + label) and/or every record
folder under records/ on a ref (--records-on main). Each folder is extracted with git from a local
mirror into a temporary directory (never into the repository: those files must not be committed),
replayed with `run_replay` (shrunk sizes, synthetic data, CUDA emulation where the boot module has
it) under a per-entry time limit, and audited statically for comparison. A row says whether the run
reached a ledger, its seconds, the shims used, what was shrunk, the replay's verdict and rule ids,
the static verdict, and the first line of the failure. For a labelled entry, OK means: a PR
labelled with a dynamic rule (DYNAMIC_RULES) FAILs the replay with one of its rules; a legal PR
gets no replay error.

    .venv/bin/python scripts/replay_corpus.py --git-dir /work/.mirror/openai+parameter-golf/repo \\
        [--corpus ../shared/corpus/dev.json | --corpus none] [--records-on main] [--pr 549] \\
        [--timeout 180] [--no-probes] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dev_corpus import DEFAULT_CORPUS, extract  # noqa: E402

from audit.finding import verdict_of  # noqa: E402
from golf.errors import GolfError  # noqa: E402

DYNAMIC_RULES = {"TTT-1", "TTT-2", "C1", "C2", "DATA-3", "BYTES-1", "CALIB-1"}
DEFAULT_TIMEOUT_S = 180.0


def record_entries(git_dir: str, ref: str) -> list[dict]:
    """Every folder records/<track>/<name> holding a train_gpt.py on `ref`."""
    sha = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", ref], check=True, capture_output=True,
                         text=True).stdout.strip()
    names = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", sha, "records/"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    folders = sorted({n.rsplit("/", 1)[0] for n in names if n.count("/") == 3 and n.endswith("/train_gpt.py")})
    return [{"pr": None, "sha": sha, "folder": f, "label": None, "rules": []} for f in folders]


def static_verdict(folder: Path) -> tuple[str, list[str]]:
    from audit.static.engine import load_rules, run_rules
    from audit.submission import build_context, load_submission

    try:
        findings = run_rules(build_context(load_submission(folder)), load_rules())
    except GolfError as exc:
        return f"ERROR: {exc}", []
    return verdict_of(findings), sorted({f.rule for f in findings if f.severity == "error"})


def replay_entry(git_dir: str, entry: dict, timeout_s: float, probes: bool) -> dict:
    from audit.replay import run_replay

    row = {"pr": entry.get("pr"), "folder": entry["folder"], "sha": entry["sha"], "label": entry.get("label"),
           "rules": entry.get("rules", [])}
    with tempfile.TemporaryDirectory(prefix="replay-corpus-") as tmp:
        folder = Path(tmp) / "submission"
        extract(git_dir, entry["sha"], entry["folder"], folder)
        row["static"], row["static_rules"] = static_verdict(folder)
        started = time.time()
        try:
            outcome = run_replay(folder, timeout_s=timeout_s, probes=probes, keep=Path(tmp) / "work")
        except GolfError as exc:
            row.update(ran=False, seconds=round(time.time() - started, 1), verdict="-", replay_rules=[],
                       blocker=str(exc).splitlines()[0], shrink={}, emulation=[])
            return row
        summary = outcome.summary
        row.update(ran=True, seconds=round(time.time() - started, 1), verdict=verdict_of(outcome.findings),
                   replay_rules=sorted({f.rule for f in outcome.findings if f.severity == "error"}),
                   codes=sorted({f.code for f in outcome.findings}), blocker="",
                   shrink=summary.get("shrink", {}), emulation=summary.get("emulation", []),
                   reported_val_bpb=summary.get("reported_val_bpb"), recomputed_val_bpb=summary.get("recomputed_val_bpb"))
    return row


def judged(row: dict) -> str:
    """OK / MISS for a labelled entry (see the module docstring); '-' where the label says nothing dynamic."""
    if row["label"] is None:
        return "-"
    dynamic = set(row["rules"]) & DYNAMIC_RULES
    if row["label"] == "legal":
        return "OK" if row["ran"] and not row["replay_rules"] else "MISS"
    if not dynamic:
        return "-"
    return "OK" if set(row["replay_rules"]) & dynamic else "MISS"


def _shims(row: dict) -> str:
    names = [s if isinstance(s, str) else s.get("name", "?") for s in row.get("emulation") or []]
    return ",".join(names) or "-"


def print_table(rows: list[dict]) -> None:
    print(f"{'PR/folder':48} {'ran':3} {'sec':>6} {'verdict':7} {'replay rules':16} {'static':14} {'ok':4} "
          f"{'shrunk':>6}  shims | blocker")
    for row in rows:
        name = f"#{row['pr']} " if row["pr"] else ""
        name = (name + row["folder"].rsplit("/", 1)[-1])[:48]
        static = (row["static"][:4] + " " + ",".join(row["static_rules"]))[:14]
        print(f"{name:48} {'yes' if row['ran'] else 'no':3} {row['seconds']:6.1f} {row['verdict']:7} "
              f"{','.join(row['replay_rules'])[:16]:16} {static:14} {row['ok']:4} {len(row['shrink']):6d}  "
              f"{_shims(row)} | {row['blocker'][:160]}")
    ran = [r for r in rows if r["ran"]]
    seconds = [r["seconds"] for r in ran]
    print(f"\nran to a ledger: {len(ran)}/{len(rows)}; median seconds {statistics.median(seconds) if seconds else 0:.1f}"
          f" (max {max(seconds, default=0):.1f})")
    labelled = [r for r in rows if r["ok"] != "-"]
    if labelled:
        print(f"labelled: {sum(r['ok'] == 'OK' for r in labelled)}/{len(labelled)} OK")
    blockers = Counter(r["blocker"].split(": ", 2)[-1][:100] for r in rows if not r["ran"])
    for blocker, count in blockers.most_common(8):
        print(f"  {count:3d} x {blocker}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--git-dir", required=True, help="git dir of an openai/parameter-golf mirror")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="entries file (dev.json format), or 'none'")
    parser.add_argument("--records-on", metavar="REF", help="also every record folder under records/ on REF")
    parser.add_argument("--pr", type=int, action="append", help="only these PRs of the corpus")
    parser.add_argument("--match", help="only folders whose path contains this text")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per entry (both runs)")
    parser.add_argument("--no-probes", action="store_true", help="skip the perturbation run (C1)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    entries = [] if args.corpus == "none" else json.loads(Path(args.corpus).read_text())["entries"]
    if args.pr:
        entries = [e for e in entries if e["pr"] in args.pr]
    if args.records_on:
        entries += record_entries(args.git_dir, args.records_on)
    if args.match:
        entries = [e for e in entries if args.match in e["folder"]]
    rows = []
    for entry in entries:
        try:
            row = replay_entry(args.git_dir, entry, args.timeout, not args.no_probes)
        except Exception as exc:  # noqa: BLE001 - one entry's internal error is a row, not the end of the table
            row = {"pr": entry.get("pr"), "folder": entry["folder"], "sha": entry["sha"], "label": entry.get("label"),
                   "rules": entry.get("rules", []), "ran": False, "seconds": 0.0, "verdict": "-", "replay_rules": [],
                   "static": "-", "static_rules": [], "shrink": {}, "emulation": [],
                   "blocker": f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]}
        row["ok"] = judged(row)
        rows.append(row)
        print(f"[{len(rows)}/{len(entries)}] {row['folder']}: ran={row['ran']} {row['seconds']} s {row['verdict']} "
              f"{row['replay_rules']} {row['blocker'][:120]}", file=sys.stderr, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
