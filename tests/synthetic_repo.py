"""A small parameter-golf-shaped git repository for the leaderboard, STAT-1 and --against tests.

History of main (first parent), each commit dated with GIT_AUTHOR_DATE / GIT_COMMITTER_DATE:

  2026-03-18  launch snapshot              2026-03-17_Base     val_bpb 1.2244 (one number)
  2026-03-20  merge of PR #5 (branch made  2026-03-19_Better   val_bpb 1.2000, 3 seeds in seed_results
              on 2026-03-10)
  2026-03-22  "Record: Worse (#7)"         2026-03-21_Worse    mean_val_bpb 1.2100, seeds only in logs
  2026-03-23  "Record: Invalid (#8)"       2026-03-23_Invalid  val_bpb 0.9000, removed on 2026-03-27
  2026-03-25  "Record: Best (#9)"          2026-03-24_Best     val_bpb 1.1500, one seed
  2026-03-26  "Support (#11)"              2026-03-26_Support  record_support of #9: 3 seeds, mean 1.1490
  2026-03-27  "Remove invalid record"

So the frontier is Base, Better, Best (Worse never beat Better; Invalid was removed).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

TRACK = "records/track_10min_16mb"


def seed_log(seed: int, bpb: float, stop_step: int = 6000, matrix_lr: str = "0.04") -> str:
    """A records-style log: hyperparameter preamble, no per-step lines, a wallclock stop, the score."""
    return (
        f"num_layers:11 model_dim:512 matrix_lr:{matrix_lr} train_seq_len:2048\n"
        f"seed:{seed}\n"
        f"stopping_early: wallclock_cap train_time:{590000 + stop_step}ms step:{stop_step}/20000\n"
        "Total submission size int6+zstd: 15500000 bytes\n"
        f"final_int6_sliding_window_exact val_loss:{bpb * 2.1:.8f} val_bpb:{bpb:.8f}\n"
    )


class Repo:
    def __init__(self, root: Path):
        self.root = root
        self.git_dir = str(root / ".git")
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "t@example.com")
        self.git("config", "user.name", "t")

    def git(self, *args: str, date: str = "2026-03-01T12:00:00+00:00") -> str:
        env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        return subprocess.run(["git", *args], cwd=self.root, env=env, check=True, capture_output=True,
                              text=True).stdout

    def add_folder(self, folder: str, meta: dict, logs: dict[str, str] = ()) -> None:
        path = self.root / TRACK / folder
        path.mkdir(parents=True, exist_ok=True)
        (path / "submission.json").write_text(json.dumps(meta))
        (path / "train_gpt.py").write_text("print('record')\n")
        for name, text in dict(logs).items():
            (path / name).write_text(text)

    def commit(self, message: str, date: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date)


def build(root: Path) -> Repo:
    repo = Repo(root)
    repo.add_folder("2026-03-17_Base", {"name": "Base", "author": "o", "val_bpb": 1.2244})
    repo.commit("Launch snapshot", "2026-03-18T09:00:00+00:00")

    repo.git("checkout", "-q", "-b", "pr5")
    seeds = {"1": {"val_bpb": 1.1995}, "2": {"val_bpb": 1.2005}, "3": {"val_bpb": 1.2000}}
    repo.add_folder("2026-03-19_Better", {"name": "Better", "author": "b", "val_bpb": 1.2, "seed_results": seeds})
    repo.commit("Better record", "2026-03-10T09:00:00+00:00")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "pr5", "-m", "Merge pull request #5 from b/better",
             date="2026-03-20T09:00:00+00:00")

    logs = {f"train_seed{s}.log": seed_log(s, b) for s, b in ((1, 1.2095), (2, 1.2105), (3, 1.2100))}
    repo.add_folder("2026-03-21_Worse", {"name": "Worse", "author": "w", "mean_val_bpb": 1.21}, logs)
    repo.commit("Record: Worse (#7)", "2026-03-22T09:00:00+00:00")
    repo.add_folder("2026-03-23_Invalid", {"name": "Invalid", "author": "i", "val_bpb": 0.9})
    repo.commit("Record: Invalid (#8)", "2026-03-23T09:00:00+00:00")
    repo.add_folder("2026-03-24_Best", {"name": "Best", "author": "c", "val_bpb": 1.15,
                                         "seed_results": {"1": {"val_bpb": 1.15}}})
    repo.commit("Record: Best (#9)", "2026-03-25T09:00:00+00:00")
    support = {"1": {"val_bpb": 1.15}, "2": {"val_bpb": 1.1485}, "3": {"val_bpb": 1.1485}}
    repo.add_folder("2026-03-26_Support", {"name": "Support for #9", "author": "s", "val_bpb": 1.149,
                                            "submission_type": "record_support", "supports_pr": 9,
                                            "seed_results": support})
    repo.commit("Support (#11)", "2026-03-26T09:00:00+00:00")
    repo.git("rm", "-q", "-r", f"{TRACK}/2026-03-23_Invalid")
    repo.commit("Remove invalid record", "2026-03-27T09:00:00+00:00")
    return repo
