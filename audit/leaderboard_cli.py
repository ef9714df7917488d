"""`golf leaderboard`: the record leaderboard of a parameter-golf clone, from its git history.

Text: every record folder best score first (the README table's order), with the day it reached the
ref and a `*` on the chronological frontier; `--at DATE` adds the record standing on that day and
the frontier up to it. `--format json` prints entries, frontier and record to stdout. The clone comes
from `--repo` or the GOLF_REPO environment variable. Exit codes: 0, or 2 on bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from audit.leaderboard import REPO_ENV, repo_from
from golf.errors import GolfError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help=f"git dir of a clone of openai/parameter-golf (default: ${REPO_ENV})")
    parser.add_argument("--at", metavar="DATE", help="YYYY-MM-DD: the record standing on that day")
    parser.add_argument("--track", default="10min_16mb", help="records/track_<TRACK> (default 10min_16mb)")
    parser.add_argument("--ref", default="main", help="the branch or commit to read (default main)")
    parser.add_argument("--top", type=int, default=0, metavar="N", help="only the N best entries (text)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def parse_date(text: str, what: str = "--at") -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise GolfError(f"{what} {text!r}: expected a date YYYY-MM-DD") from None


def run(args: argparse.Namespace) -> int:
    from audit.leaderboard import load_leaderboard

    at = parse_date(args.at) if args.at else None
    board = load_leaderboard(repo_from(args.repo), track=args.track, ref=args.ref)
    frontier = board.rows
    record = board.record_at(at) if at else None
    if args.format == "json":
        out = {
            "track": board.track, "ref": board.ref, "sha": board.sha, "cache": board.cache_path,
            "entries": [r.to_dict() for r in board.entries],
            "frontier": [r.to_dict() for r in frontier if at is None or r.date < at],
            "skipped": board.skipped,
        }
        if at:
            out["at"] = at.isoformat()
            out["record"] = record.to_dict() if record else None
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    on_frontier = {r.folder for r in frontier}
    entries = board.entries[: args.top] if args.top > 0 else board.entries
    print(f"leaderboard track_{board.track} at {board.ref} ({board.sha[:10]}): {len(board.entries)} records, "
          f"{len(frontier)} on the frontier (*){' [cache]' if board.from_cache else ''}")
    print(f"  {'#':>3}  {'val_bpb':>8}  {'seeds':>5}  {'merged':10}  {'PR':>6}  {'author':18}  name")
    for rank, row in enumerate(entries, 1):
        seeds = str(len(row.seeds)) if row.seeds else "-"
        mark = "*" if row.folder in on_frontier else " "
        pr = f"#{row.pr}" if row.pr else "-"
        print(f"{mark} {rank:>3}  {row.val_bpb:8.5f}  {seeds:>5}  {row.date}  {pr:>6}  {row.author[:18]:18}  "
              f"{row.name[:70]}")
    for folder, why in sorted(board.skipped.items()):
        print(f"  skipped {folder}: {why}")
    if at:
        print(f"frontier before {at}:")
        for row in (r for r in frontier if r.date < at):
            print(f"  {row.date}  {row.val_bpb:8.5f}  {row.folder}")
        print(f"record standing on {at}: "
              + (f"{record.val_bpb:.5f} {record.folder} (merged {record.date})" if record else "none"))
    return 0
