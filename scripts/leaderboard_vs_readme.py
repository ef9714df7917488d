"""Compare `golf leaderboard` with the leaderboard table of the clone's README, side by side.

A check run by hand (not a test: it needs a real clone): reads the first Markdown table under
"## Leaderboard" of `git show REF:README.md`, and prints its top N rows next to the top N entries of
audit/leaderboard.py, with whether the scores agree at the README's precision and the PR numbers
match (the README links a PR or a records folder).

    .venv/bin/python scripts/leaderboard_vs_readme.py --git-dir /work/.mirror/openai+parameter-golf/repo [--top 5]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit.leaderboard import load_leaderboard  # noqa: E402


def readme_rows(git_dir: str, ref: str) -> list[dict]:
    text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{ref}:README.md"], check=True,
                          capture_output=True, text=True).stdout
    section = text.split("## Leaderboard", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not re.fullmatch(r"\d+\.\d+", cells[1]):
            if rows and not line.strip():
                break  # the end of the first table
            continue
        pr = re.search(r"/pull/(\d+)", cells[5])
        folder = re.search(r"records/[^/]+/([^/)]+)", cells[5])
        rows.append({"name": cells[0], "score": cells[1], "author": cells[2], "date": cells[4],
                     "pr": int(pr.group(1)) if pr else None, "folder": folder.group(1) if folder else None})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", required=True)
    parser.add_argument("--ref", default="main")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    readme = readme_rows(args.git_dir, args.ref)[: args.top]
    board = load_leaderboard(args.git_dir, ref=args.ref).entries[: args.top]
    print(f"{'README':<58} | {'golf leaderboard':<70} | agree")
    agree = 0
    for ours, theirs in zip(board, readme):
        decimals = len(theirs["score"].split(".")[1])
        same_score = abs(ours.val_bpb - float(theirs["score"])) <= 0.5 * 10 ** -decimals + 1e-9
        same_row = (theirs["pr"] == ours.pr) if theirs["pr"] else (theirs["folder"] == ours.folder)
        agree += same_score and same_row
        left = f"{theirs['score']} {theirs['date']} #{theirs['pr'] or '-'} {theirs['name'][:34]}"
        right = f"{ours.val_bpb:.5f} merged {ours.date} #{ours.pr or '-'} {ours.folder[:40]}"
        print(f"{left:<58} | {right:<70} | {'yes' if same_score and same_row else 'row' if same_row else 'NO'}")
    print(f"top {len(readme)}: {agree}/{len(readme)} rows agree (score at the README's precision, same PR / folder)")
    _whole_table(readme_rows(args.git_dir, args.ref), load_leaderboard(args.git_dir, ref=args.ref).entries)
    return 0 if agree == len(readme) else 1


def _whole_table(readme: list[dict], entries: list) -> None:
    """Every README row matched to an entry by PR or folder: equal scores, differences, and the rows
    on one side only."""
    matched, differ, only_readme = 0, [], []
    seen = set()
    for row in readme:
        entry = next((e for e in entries if (row["pr"] and e.pr == row["pr"]) or
                      (row["folder"] and e.folder == row["folder"])), None)
        if entry is None:
            only_readme.append(f"{row['score']} #{row['pr'] or '-'} {row['folder'] or row['name']}")
            continue
        seen.add(entry.folder)
        decimals = len(row["score"].split(".")[1])
        if abs(entry.val_bpb - float(row["score"])) <= 0.5 * 10 ** -decimals + 1e-9:
            matched += 1
        else:
            differ.append(f"{entry.folder}: README {row['score']}, submission.json {entry.val_bpb}")
    only_ours = [f"{e.val_bpb:.5f} {e.folder}" for e in entries if e.folder not in seen]
    print(f"whole table: {len(readme)} README rows, {len(entries)} entries; {matched} matched with the same score")
    for title, items in (("scores differ", differ), ("README rows without a records folder at the ref", only_readme),
                         ("records folders the README table leaves out", only_ours)):
        print(f"  {title}: {len(items)}")
        for item in items:
            print(f"    {item}")


if __name__ == "__main__":
    raise SystemExit(main())
