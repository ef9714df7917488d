"""What a review comment says besides the findings: the submission's date and the rulings in force
on it, the record of that day and the significance of the submission's seeds against that record.

The date is the one the static audit judges dated rulings by (audit.rulings.submission_date: the
folder's date prefix, else submission.json, else the PR's date); the record comes from
audit.leaderboard (the record frontier of the folder's track in the repository's history, the best
entry merged before that day, never the folder itself), as STAT-1 (PG016) finds it; the candidate's per-seed scores are read as `golf validate --against FOLDER`
reads a folder (its run logs, else submission.json). A fact that cannot be found stays None with a
note that says why, so the comment never guesses.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from audit.leaderboard import load_leaderboard, significance_table
from audit.pr import track_of
from audit.rulings import rulings_at, submission_date
from golf.errors import GolfError


def _candidate(folder_on_disk: Path) -> tuple[dict | None, str]:
    from audit.runner.stats import record_sample

    try:
        sample = record_sample(str(folder_on_disk))
    except GolfError as exc:
        return None, str(exc).replace(str(folder_on_disk), "the folder")
    return {"n": sample.n, "mean_val_bpb": sample.mean(), "std_val_bpb": sample.std(), "val_bpb": sample.bpb,
            "val_loss": sample.val_loss}, ""


def _meta(folder_on_disk: Path) -> dict | None:
    try:
        return json.loads((folder_on_disk / "submission.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _row(row) -> dict:
    return {"val_bpb": row.val_bpb, "date": row.date.isoformat(), "folder": row.folder, "name": row.name,
            "seeds": list(row.seeds) if row.seeds else None}


def review_facts(git_dir: str, base: str, folder_on_disk: Path, folder: str, pr_date: dt.date) -> dict:
    """{"date", "date_source", "rulings", "candidate", "candidate_note", "record", "record_note",
    "significance"} for one records folder of a PR."""
    date, source = submission_date(Path(folder).name, _meta(folder_on_disk))
    if date is None:  # as the static audit does with the date it was given
        date, source = pr_date, "the PR's date"
    candidate, candidate_note = _candidate(folder_on_disk)
    facts = {"date": date.isoformat() if date else None, "date_source": source,
             "rulings": [f"{r.rule} from {r.since}: {r.summary}" for r in rulings_at(date)],
             "candidate": candidate, "candidate_note": candidate_note, "record": None, "record_note": "",
             "significance": []}
    try:
        board = load_leaderboard(git_dir, track=track_of(folder), ref=base)
    except GolfError as exc:
        facts["record_note"] = f"leaderboard not available: {exc}"
        return facts
    row = board.record_at(date, exclude=[Path(folder).name], by="submitted") if date else None
    if row is None:
        facts["record_note"] = f"no merged record of track {track_of(folder)} submitted before {date}"
        return facts
    facts["record"] = _row(row)
    if candidate is not None:
        facts["significance"] = significance_table(candidate["val_bpb"], row, on=date,
                                                   candidate_losses=candidate["val_loss"] or None)
    return facts
