"""`golf submit --name NAME`: build submissions/<YYYY-MM-DD>_<NAME>/ in the records layout and audit it.

1. bundle golf/ into the folder's single train_gpt.py (golf/bundle.py);
2. run that train_gpt.py once per seed with the audit runner (torchrun, network off where possible,
   wallclock limit), smoke preset on the demo corpus unless --preset / --data say otherwise; the
   run logs (source dump included) become train_seed<S>.log;
3. write submission.json (the records' fields) and README.md (results, what was run, rule
   compliance with the audit's evidence);
4. `golf audit` the folder: static, and the replay unless --no-replay;
5. move it into place only when the verdict is not FAIL and every artifact is within 16,000,000
   bytes. Everything is built in a hidden temporary folder next to the target, so a refusal, an
   error or Ctrl-C leaves nothing on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from golf.errors import BudgetExceeded, GolfError

ARTIFACT_LIMIT = 16_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="submission name (letters, digits, . _ -)")
    parser.add_argument("--preset", default="smoke", choices=("smoke", "record"), help="hyperparameter preset")
    parser.add_argument("--data", type=Path, help="data folder (default: the demo corpus in runs/demo-data, "
                        "built when missing)")
    parser.add_argument("--seeds", default="1337", help="comma-separated seeds to run (default 1337)")
    parser.add_argument("--nproc", type=int, default=1, help="processes per seed (torchrun --nproc_per_node)")
    parser.add_argument("--timeout", type=float, default=None, help="wallclock limit per seed in seconds")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="hyperparameter override for the runs (recorded in the README)")
    parser.add_argument("--author", default=None, help="author (default: git config user.name)")
    parser.add_argument("--github-id", default=None, help="GitHub id (default: the author)")
    parser.add_argument("--out", type=Path, default=Path("submissions"), help="parent folder (default submissions/)")
    parser.add_argument("--date", default=None, help="YYYY-MM-DD of the folder name (default today, UTC)")
    parser.add_argument("--no-replay", action="store_true", help="static audit only")


def run(args: argparse.Namespace) -> int:
    from audit.runner.cli import parse_env, parse_seeds

    if not _NAME.fullmatch(args.name):
        raise GolfError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-'")
    seeds = parse_seeds(args.seeds)
    env = parse_env(args.env)
    date = args.date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    if not re.fullmatch(r"\d{4}-\d\d-\d\d", date):
        raise GolfError(f"--date {date!r}: expected YYYY-MM-DD")
    target = args.out / f"{date}_{args.name}"
    if target.exists():
        raise GolfError(f"{target} already exists; choose another --name")
    if args.nproc < 1:
        raise GolfError("--nproc must be at least 1")
    from golf.config import Hyperparameters

    Hyperparameters.from_env(args.preset, env)  # a malformed override fails here, not in every seed
    data = _data_folder(args.data)
    author = args.author or _git_user() or "unknown"

    created_out = not args.out.exists()
    args.out.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".build-{args.name}-", dir=args.out))
    written = False
    try:
        folder = build / target.name
        folder.mkdir()
        verdict = _build(args, folder, build / "work", data, seeds, env, author, date)
        if verdict == "FAIL":
            print("golf submit: refused: the audit verdict is FAIL; nothing was written", file=sys.stderr)
            return 1
        os.rename(folder, target)
        written = True
    finally:
        shutil.rmtree(build, ignore_errors=True)
        if created_out and not written:
            with contextlib.suppress(OSError):
                args.out.rmdir()  # made for this build; removed only when nothing else landed in it
    print(f"golf submit: wrote {target} (audit verdict {verdict})", file=sys.stderr)
    return 0


def _data_folder(data: Path | None) -> Path:
    from golf.data.layout import resolve_data

    if data is None:
        data = Path("runs") / "demo-data"
        if not data.is_dir():
            from golf.data.corpus import build_demo

            print(f"golf submit: building the demo corpus in {data}", file=sys.stderr)
            build_demo(data)
    resolve_data(data)  # a clear error now rather than in every seed's log
    return data.resolve()


def _git_user() -> str | None:
    try:
        out = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _build(args, folder: Path, work: Path, data: Path, seeds: list[int], env: dict[str, str],
           author: str, date: str) -> str:
    from audit.runner.launch import DEFAULT_TIMEOUT_S, LaunchSpec, launch_seed
    from golf.bundle import write_bundle

    bundle = write_bundle(folder / "train_gpt.py")
    spec = LaunchSpec(folder=folder, nproc=args.nproc, timeout_s=args.timeout or DEFAULT_TIMEOUT_S,
                      env={**env, "PRESET": args.preset, "DATA_PATH": str(data)})
    runs = []
    for seed in seeds:
        print(f"golf submit: seed {seed}: running train_gpt.py ({args.preset}, nproc {args.nproc})", file=sys.stderr)
        seed_run = launch_seed(spec, seed, work)
        out_dir = Path(seed_run.run_dir) / "runs" / f"seed_{seed}"
        result_path = out_dir / "run.json"
        if seed_run.timed_out or seed_run.returncode != 0 or not result_path.is_file():
            tail = "\n".join(Path(seed_run.log).read_text(errors="replace").splitlines()[-5:])
            why = f"killed at {spec.timeout_s:g} s" if seed_run.timed_out else f"exit code {seed_run.returncode}"
            raise GolfError(f"seed {seed}: train_gpt.py failed ({why}); nothing was written. Log tail:\n{tail}")
        result = json.loads(result_path.read_text())
        if result["artifact_bytes"] > ARTIFACT_LIMIT:
            raise BudgetExceeded(f"seed {seed}: artifact {result['artifact_bytes']:,} bytes > {ARTIFACT_LIMIT:,}; "
                                 "nothing was written")
        shutil.copyfile(out_dir / "train.log", folder / f"train_seed{seed}.log")
        print(f"golf submit: seed {seed}: val_bpb {result['val_bpb']:.8f}, artifact {result['artifact_bytes']:,} bytes, "
              f"train {result['train_seconds']:.1f} s, eval {result['eval_seconds']:.1f} s", file=sys.stderr)
        runs.append((seed, result, seed_run))

    meta = _submission_json(args, author, date, bundle, runs)
    (folder / "submission.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    facts = {"bundle": bundle, "runs": runs, "data": data, "env": env, "args": args}
    (folder / "README.md").write_text(_readme(meta, facts, audit=None), encoding="utf-8")
    report = _audit(folder, data, replay=not args.no_replay)
    (folder / "README.md").write_text(_readme(meta, facts, audit=report), encoding="utf-8")
    final = _audit(folder, data, replay=False)  # the README changed: the claims rules read it again
    _print_findings(final)
    return "FAIL" if "FAIL" in (report.verdict, final.verdict) else final.verdict


def _audit(folder: Path, data: Path, replay: bool):
    from audit.cli import audit_static

    report = audit_static(str(folder))
    if report.error is not None:
        raise GolfError(f"audit of the built folder failed: {report.error}")
    if not replay or report.verdict == "FAIL":  # a replay cannot lift a FAIL: spare its two runs
        return report
    from audit.replay import run_replay

    print("golf submit: replaying the evaluation under instrumentation (audit --replay)", file=sys.stderr)
    try:
        outcome = run_replay(folder, data=data)
    except GolfError as exc:
        report.replay = {"error": str(exc)}
    else:
        report.findings = list(report.findings) + list(outcome.findings)
        report.replay = dict(outcome.summary)
    finally:
        shutil.rmtree(folder / "runs", ignore_errors=True)  # the replay's own run folders
    return report


def _print_findings(report) -> None:
    for f in report.findings:
        where = f"{f.path}:{f.line}: " if f.path else ""
        print(f"golf submit: audit {f.severity} {f.code} {f.rule} {where}{f.message}", file=sys.stderr)


def _submission_json(args, author: str, date: str, bundle, runs) -> dict:
    bpb = [r["val_bpb"] for _, r, _ in runs]
    loss = [r["val_loss"] for _, r, _ in runs]
    meta = {
        "name": args.name,
        "author": author,
        "github_id": args.github_id or author,
        "blurb": f"golf reference pipeline ({args.preset} preset), bundled into one train_gpt.py; "
                 f"{len(runs)} seed(s), mean val_bpb {statistics.fmean(bpb):.8f}.",
        "date": date,
        "track": "10min_16mb" if args.preset == "record" else "non-record",
        "val_bpb": round(statistics.fmean(bpb), 8),  # 8 decimals, as the logs print them
        "val_loss": round(statistics.fmean(loss), 8),
        "seeds": [seed for seed, _, _ in runs],
        "seed_results": {
            str(seed): {
                "val_bpb": round(r["val_bpb"], 8), "val_loss": round(r["val_loss"], 8),
                "artifact_bytes": r["artifact_bytes"],
                "model_bytes": r["model_bytes"], "steps": r["steps"],
                "train_time_s": round(r["train_seconds"], 3), "eval_time_s": round(r["eval_seconds"], 3),
            }
            for seed, r, _ in runs
        },
        "bytes_total": max(r["artifact_bytes"] for _, r, _ in runs),
        "bytes_code": bundle.raw_bytes,
        "bytes_code_compressed": bundle.compressed_bytes,
        "preset": args.preset,
    }
    if len(bpb) > 1:
        meta["val_bpb_std"] = round(statistics.stdev(bpb), 8)
    return meta


def _readme(meta: dict, facts: dict, audit) -> str:
    args, bundle, runs = facts["args"], facts["bundle"], facts["runs"]
    env = " ".join(f"{k}={v}" for k, v in sorted(facts["env"].items()))
    lines = [
        f"# {meta['name']}" + ("" if meta["track"] == "10min_16mb" else " (non-record)"),
        "",
        f"{meta['blurb']} Built by `golf submit` on {meta['date']}.",
        "",
        "## Results",
        "",
        "| seed | val_bpb | val_loss | steps | train s | eval s | artifact bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seed, r, _ in runs:
        lines.append(f"| {seed} | {r['val_bpb']:.8f} | {r['val_loss']:.8f} | {r['steps']} | {r['train_seconds']:.1f} "
                     f"| {r['eval_seconds']:.1f} | {r['artifact_bytes']:,} |")
    std = f" (std {meta['val_bpb_std']:.8f})" if "val_bpb_std" in meta else ""
    lines += [
        "",
        f"Mean val_bpb **{meta['val_bpb']:.8f}**{std} over {len(runs)} seed(s). Artifact = code + model; code is "
        f"this folder's single `train_gpt.py`: {bundle.raw_bytes:,} bytes raw, {bundle.compressed_bytes:,} bytes as an "
        "lzma+base85 self-extracting file (the logs count the raw bytes).",
        "",
        "## What was run",
        "",
        f"`train_gpt.py` is golf/ flattened by golf/bundle.py (modules: {', '.join(bundle.modules)}). Each seed ran "
        f"it from a copy of this folder:",
        "",
        "```",
        f"{env + ' ' if env else ''}PRESET={args.preset} DATA_PATH=<data> SEED=<seed> \\",
        f"  python -m torch.distributed.run --standalone --nproc_per_node={args.nproc} train_gpt.py",
        "```",
        "",
        f"Data: {'the demo corpus (`golf data demo`)' if args.data is None else 'the folder given with --data'}; "
        f"{runs[0][2].network}. `python train_gpt.py` runs the smoke preset on a CPU; "
        "`torchrun --standalone --nproc_per_node=8 train_gpt.py` the record preset on 8 GPUs (PRESET overrides).",
        "",
        "## Rule compliance",
        "",
        "| rule | evidence |",
        "|---|---|",
        f"| BUD-T training <= 600 s | longest seed {max(r['train_seconds'] for _, r, _ in runs):.1f} s "
        "(loop + calibration on the training timer) |",
        f"| BUD-E evaluation <= 600 s | longest seed {max(r['eval_seconds'] for _, r, _ in runs):.1f} s |",
        f"| SIZE-1 artifact <= 16,000,000 B | largest {meta['bytes_total']:,} B |",
        "| CODE-1 one counted code file | `train_gpt.py` imports nothing of golf (checked by the bundler) |",
        f"| NET-1 no network | runs: {runs[0][2].network} |",
        "",
    ]
    if audit is None:
        lines.append("Audit: pending.")
    else:
        lines.append(f"`golf audit` verdict: **{audit.verdict}** (static"
                     + (", replay" if audit.replay and "error" not in audit.replay else "") + ").")
        if audit.replay.get("error"):
            lines.append(f"Replay not available: {audit.replay['error']}")
        elif audit.replay:
            probes = "; ".join(f"{p.get('name')}: {'passed' if p.get('passed') else 'FAILED'}"
                               for p in audit.replay.get("probes", []))
            lines.append(f"Replay (the evaluation re-run under instrumentation, "
                         f"{audit.replay.get('replay_seconds', 0):.0f} s): probes {probes or 'none'}.")
        lines.append("")
        for f in audit.findings:
            lines.append(f"- {f.severity} {f.code} {f.rule}: {f.message}" + (f" (`{f.path}:{f.line}`)" if f.path else ""))
        if not audit.findings:
            lines.append("No findings.")
    return "\n".join(lines) + "\n"
