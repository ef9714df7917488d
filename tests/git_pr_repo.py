"""A git repository for the PR tests, built from scratch: tiny records folders (legal, and one that
trains on the validation tokens), dated commits, a main branch that moves on after a PR branched,
and PR refs: 7 (open, two folders + a root README edit), 8 (docs only), 9 (merged by a merge commit)."""

import json
import os
import subprocess
from pathlib import Path

TRACK = "records/track_10min_16mb"
LEGAL = f"{TRACK}/2026-04-02_TinyLegal"
ILLEGAL = f"{TRACK}/2026-04-03_TinyValTraining"
BASE_RECORD = f"{TRACK}/2026-03-20_TinyBase"
LATER = f"{TRACK}/2026-04-05_LandedAfterTheFork"
MERGED = f"{TRACK}/2026-04-06_TinyMerged"
UNDATED = f"{TRACK}/TinyUndated"  # no date prefix, no date in submission.json: the PR's date applies

HEADER = '''import glob, math, os
import numpy as np
import torch


class Hyperparameters:
    val_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_val_*.bin")
    train_files = os.path.join(os.environ.get("DATA_PATH", "./data"), "fineweb_train_*.bin")
    seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 1024))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))


def load_tokens(pattern, seq_len):
    tokens = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
    return tokens[: ((tokens.numel() - 1) // seq_len) * seq_len + 1]


def eval_val(args, model, val_tokens, bytes_per_token):
    loss_sum, byte_sum = 0.0, 0.0
    with torch.inference_mode():
        for i in range((val_tokens.numel() - 1) // args.seq_len):
            chunk = val_tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
            loss_sum += float(model(chunk[:-1][None], chunk[1:][None])) * args.seq_len
            byte_sum += float(bytes_per_token[chunk[1:]].sum())
    return loss_sum / byte_sum / math.log(2)


def fit(model, tokens, args, steps):
    opt = torch.optim.AdamW(model.parameters())
    for step in range(steps):
        i = step % ((tokens.numel() - 1) // args.seq_len)
        chunk = tokens[i * args.seq_len : (i + 1) * args.seq_len + 1].long()
        loss = model(chunk[:-1][None], chunk[1:][None])
        opt.zero_grad()
        loss.backward()
        opt.step()
'''
LEGAL_MAIN = '''

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(8, 8)
    fit(model, load_tokens(args.train_files, args.seq_len), args, 100)
    val_tokens = load_tokens(args.val_files, args.seq_len)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, torch.ones(1024)):.6f}")
'''
ILLEGAL_MAIN = '''

def main():
    args = Hyperparameters()
    model = torch.nn.Linear(8, 8)
    val_tokens = load_tokens(args.val_files, args.seq_len)
    fit(model, val_tokens, args, 100)
    print(f"final val_bpb:{eval_val(args, model, val_tokens, torch.ones(1024)):.6f}")
'''
ILLEGAL_LINE = "    fit(model, val_tokens, args, 100)"


def _log(seed: int, bpb: float) -> str:
    return (f"Hyperparameters:\n  seed: {seed}\n  max_wallclock_seconds: 600.0\n"
            f"stopping_early: wallclock_cap train_time:599000ms step:5000/20000\n"
            f"Total submission size int8+zlib: 15000000 bytes\n"
            f"final val_loss:{bpb * 1.69:.4f} val_bpb:{bpb:.4f} eval_time:60000ms\n")


def folder_files(name: str, main_code: str, scores: list[float], date: str | None) -> dict[str, str]:
    meta = {"name": name, "author": "golf tests", "github_id": "golf-tests", "date": date,
            "val_bpb": round(sum(scores) / len(scores), 4), "seeds": list(range(1, len(scores) + 1)),
            "bytes_total": 15000000}
    files = {"train_gpt.py": HEADER + main_code,
             "README.md": f"# {name}\n\nA tiny submission written for the tests.\n",
             "submission.json": json.dumps({k: v for k, v in meta.items() if v is not None})}
    for seed, bpb in enumerate(scores, 1):
        files[f"train_seed{seed}.log"] = _log(seed, bpb)
    return files


def git(cwd: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "golf tests", "GIT_AUTHOR_EMAIL": "tests@golf.invalid",
           "GIT_COMMITTER_NAME": "golf tests", "GIT_COMMITTER_EMAIL": "tests@golf.invalid"}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str, date: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


def under(folder: str, files: dict[str, str]) -> dict[str, str]:
    return {f"{folder}/{rel}": text for rel, text in files.items()}


def build_upstream(repo: Path) -> Path:
    """main: a base record; PR 7 (two commits, a legal and an illegal folder, a root README edit)
    branched before main moved on; PR 8 edits only docs; PR 9 was merged with a merge commit; PR 10
    (an undated folder) was fast-forwarded onto main."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"README.md": "# challenge\n", **under(BASE_RECORD, folder_files("Base", LEGAL_MAIN, [1.2012, 1.2020, 1.2004], "2026-03-20"))},
           "Record: tiny base", "2026-03-20T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr7")
    commit(repo, under(LEGAL, folder_files("Legal", LEGAL_MAIN, [1.1500, 1.1510, 1.1490], "2026-04-02")),
           "Record: tiny legal and tiny val training", "2026-04-02T09:00:00+00:00")
    commit(repo, {"README.md": "# challenge\n\nedited by the PR\n",
                  **under(ILLEGAL, folder_files("Illegal", ILLEGAL_MAIN, [1.0100, 1.0120, 1.0110], "2026-04-03"))},
           "add the second folder", "2026-04-03T09:00:00+00:00")
    git(repo, "update-ref", "refs/pull/7/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    commit(repo, under(LATER, folder_files("Later", LEGAL_MAIN, [1.1800, 1.1810, 1.1790], "2026-04-05")),
           "Record: landed on main after PR 7 branched", "2026-04-05T12:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr8")
    commit(repo, {"README.md": "# challenge\n\ntypo fixed\n"}, "docs: typo", "2026-04-05T13:00:00+00:00")
    git(repo, "update-ref", "refs/pull/8/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "pr9")
    commit(repo, under(MERGED, folder_files("Merged", LEGAL_MAIN, [1.1700, 1.1710, 1.1690], "2026-04-06")),
           "wip", "2026-04-06T08:00:00+00:00")
    git(repo, "update-ref", "refs/pull/9/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "pr9", "-m", "Merge pull request #9 from tests/pr9\n\nRecord: tiny merged",
        date="2026-04-07T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "pr10")
    commit(repo, under(UNDATED, folder_files("Undated", LEGAL_MAIN, [1.1650, 1.1660, 1.1640], None)),
           "Record: tiny undated", "2026-04-08T08:00:00+00:00")
    git(repo, "update-ref", "refs/pull/10/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "pr10")
    for branch in ("pr7", "pr8", "pr9", "pr10"):
        git(repo, "branch", "-q", "-D", branch)
    return repo
