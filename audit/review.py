"""What a review comment says besides the findings: the record of the submission's day and the
significance of its seeds against that record.

The record comes from audit.leaderboard (the record frontier built from the repository's history,
looked up at the PR's date); the candidate's per-seed scores are read as `golf validate --against
FOLDER` reads a folder (its run logs, else submission.json). A fact that cannot be found stays None
with a note that says why, so the comment never guesses.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from audit.pr import track_of
from golf.errors import GolfError


def _candidate(folder_on_disk: Path) -> tuple[dict | None, str]:
    from audit.runner.stats import record_sample

    try:
        sample = record_sample(str(folder_on_disk))
    except GolfError as exc:
        return None, str(exc).replace(str(folder_on_disk), "the folder")
    return {"n": sample.n, "mean_val_bpb": sample.mean(), "std_val_bpb": sample.std(), "val_bpb": sample.bpb}, ""


def _row(row) -> dict:
    return {"val_bpb": row.val_bpb, "date": row.date.isoformat(), "folder": row.folder, "name": row.name,
            "seeds": list(row.seeds) if row.seeds else None}


def review_facts(git_dir: str, base: str, folder_on_disk: Path, folder: str, date: dt.date) -> dict:
    """{"candidate", "candidate_note", "record", "record_note", "significance"} for one PR folder."""
    candidate, candidate_note = _candidate(folder_on_disk)
    facts = {"candidate": candidate, "candidate_note": candidate_note, "record": None, "record_note": "",
             "significance": []}
    try:
        from audit.leaderboard import load_leaderboard, significance_table
    except ImportError:
        facts["record_note"] = "no leaderboard in this version of the toolkit"
        return facts
    try:
        board = load_leaderboard(git_dir, track=track_of(folder), ref=base)
    except GolfError as exc:
        facts["record_note"] = f"leaderboard not available: {exc}"
        return facts
    row = board.record_at(date)
    if row is not None and Path(row.folder).name == Path(folder).name:
        row = board.record_at(date - dt.timedelta(days=1))  # a merged PR is not compared with itself
    if row is None:
        facts["record_note"] = f"no record of track {track_of(folder)} on {date.isoformat()}"
        return facts
    facts["record"] = _row(row)
    if candidate is not None:
        facts["significance"] = list(significance_table(candidate["val_bpb"], row))
    return facts
