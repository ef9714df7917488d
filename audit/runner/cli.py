"""`golf validate FOLDER`: run a submission's seeds under torchrun (or re-use its logs), then report
per-seed rows, mean and std, significance against the record, findings, JSON and a PNG plot.

Human output (progress, table, findings) goes to stderr through rich; `--format json` prints the
report to stdout. Exit codes: 0 clean at the --fail-on level, 1 findings, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from golf.errors import GolfError

DEFAULT_SEEDS = (1337, 42, 2025)
SMOKE_TIMEOUT_S = 180.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="submission folder (train_gpt.py, submission.json, logs)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: 1337,42,2025 when running; "
                        "every shipped log with --reuse-logs)")
    parser.add_argument("--nproc", type=int, default=1, help="processes per node (torchrun --nproc_per_node)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes (torchrun rendezvous; needs --rdzv-endpoint)")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's rank when --nnodes > 1")
    parser.add_argument("--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous for several nodes")
    parser.add_argument("--against", help="the previous record: a val_bpb number, a submission folder, or auto "
                        "(the record standing on the submission's date in the leaderboard of --repo)")
    parser.add_argument("--repo", help="git dir of a clone of openai/parameter-golf for --against auto "
                        "(default: $GOLF_REPO)")
    parser.add_argument("--reuse-logs", action="store_true", help="judge the folder's own seed logs, run nothing")
    parser.add_argument("--smoke", action="store_true",
                        help="one seed at toy size under the replay's CUDA emulation, on synthetic data unless --data: "
                        "does the submission run end to end before a paid run? (default --timeout 180)")
    parser.add_argument("--timeout", type=float, default=None, help="wallclock limit per seed in seconds "
                        "(default 1320: 600 train + 600 eval + 120 start-up)")
    parser.add_argument("--data", help="DATA_PATH for the runs (shards + tokenizer folder)")
    parser.add_argument("--tokenizer", help="TOKENIZER_PATH for the runs")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env var for the runs")
    parser.add_argument("--runs", help="where the per-seed run folders go (default runs/validate/<folder name>)")
    parser.add_argument("--allow-network", action="store_true", help="do not isolate the runs from the network")
    parser.add_argument("--tolerance", type=float, default=0.002,
                        help="val_bpb difference between a re-run and submission.json reported as a warning")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--plot", help="write a PNG of the seeds against the record line")
    parser.add_argument("--fail-on", choices=("error", "warning", "never"), default="error",
                        help="lowest severity that makes the exit code 1")


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GolfError(f"--seeds {text!r}: expected comma-separated integers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise GolfError(f"--seeds {text!r}: expected distinct seeds")
    return seeds


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise GolfError(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


def _tail(path: str, lines: int = 8) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(args: argparse.Namespace) -> int:
    from audit.finding import Report
    from audit.runner import checks
    from audit.runner.launch import DEFAULT_TIMEOUT_S
    from audit.runner.logs import read_seed_logs
    from audit.rulings import submission_date
    from audit.runner.stats import record_sample, sample_of, summarize

    folder = Path(args.folder)
    if not folder.is_dir():
        raise GolfError(f"{folder} is not a folder")
    if args.nproc < 1 or args.nnodes < 1:
        raise GolfError("--nproc and --nnodes must be at least 1")
    seeds = parse_seeds(args.seeds)
    env = parse_env(args.env)
    if args.data:
        env["DATA_PATH"] = str(Path(args.data).resolve())
    if args.tokenizer:
        env["TOKENIZER_PATH"] = str(Path(args.tokenizer).resolve())
    if args.smoke and args.reuse_logs:
        raise GolfError("--smoke runs the submission; it does not go with --reuse-logs")
    # a bad --against is an error before any run
    record = _record_of_the_day(folder, args.repo) if args.against == "auto" else (
        record_sample(args.against) if args.against else None)

    findings = checks.layout_findings(folder)
    meta, meta_findings = checks.read_submission_json(folder)
    findings += meta_findings
    rows: list[dict] = []
    network = "no runs"

    if args.reuse_logs:
        summaries = read_seed_logs(folder)
        if seeds is not None:
            findings += checks.missing_seed_findings(seeds, summaries)
            summaries = [s for s in summaries if s.seed in seeds]
        for s in summaries:
            findings += checks.run_findings(s.seed, s, s.source)
            rows.append({"seed": s.seed, "status": "logged", **s.to_dict()})
    elif args.smoke and (folder / "train_gpt.py").is_file():
        smoke_findings, rows = _smoke(args, folder, seeds or list(DEFAULT_SEEDS[:1]), env)
        findings += smoke_findings
        summaries = []
    elif (folder / "train_gpt.py").is_file():
        seed_runs = _run_seeds(args, folder, seeds or list(DEFAULT_SEEDS), env)
        summaries = [r.summary for r in seed_runs]
        network = seed_runs[0].network if seed_runs else network
        for r in seed_runs:
            findings += checks.run_findings(r.seed, r.summary, r.log, r.timed_out, r.returncode,
                                            args.timeout or DEFAULT_TIMEOUT_S, _tail(r.log))
            status = "killed" if r.timed_out else ("failed" if r.returncode else "ok")
            rows.append({"seed": r.seed, "status": status, "wall_seconds": r.wall_seconds, "run_dir": r.run_dir,
                         "log": r.log, "command": r.command, **r.summary.to_dict()})
    else:
        summaries = []

    if not args.smoke:  # one toy seed: no seed set to judge
        findings += checks.seed_set_findings(summaries)
    if meta is not None and summaries:
        findings += checks.claim_findings(meta, summaries, reproduced=not args.reuse_logs, tolerance=args.tolerance)
    sample = sample_of(summaries)
    stats = summarize(sample, record) if sample.n else {"n": 0}
    findings += checks.significance_findings(stats, submission_date(folder.resolve().name, meta)[0])
    mode = "reuse-logs" if args.reuse_logs else "smoke" if args.smoke else "run"
    stats.update(mode=mode, network=network, seeds=rows)

    report = Report(path=str(folder), findings=findings, stats=stats)
    if args.plot and sample.n:
        from audit.runner.plot import plot_seeds

        scored = [s for s in summaries if s.val_bpb is not None]
        stats["plot"] = str(plot_seeds(args.plot, folder.name, [s.seed for s in scored], sample.bpb, stats))
    _print_text(report)
    if args.format == "json":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return _exit_code(report, args.fail_on)


def _record_of_the_day(folder: Path, repo: str | None):
    """--against auto: the leaderboard's record standing on the submission's date, as a Sample."""
    from audit.leaderboard import record_sample_of, repo_from, standing_record
    from audit.rulings import submission_date
    from audit.runner import checks

    repo = repo_from(repo, "--against auto")
    meta, _ = checks.read_submission_json(folder)
    on, source = submission_date(folder.resolve().name, meta)
    row = standing_record(repo, on, folder.resolve().name, meta)
    if row is None:
        raise GolfError(f"--against auto: no record merged before {on or 'today'} in {repo}")
    label = f"{'#' + str(row.pr) + ' ' if row.pr else ''}{row.folder} (merged {row.date}; submission dated " \
            f"{on or 'unknown'} from {source})"
    return record_sample_of(row, label)


def _smoke(args, folder: Path, seeds: list[int], env: dict[str, str]):
    """Smoke runs: the replay's shrink, data and boot module under the runner; PG920 for a seed that
    does not run end to end (its budgets are not judged: the clocks are virtual)."""
    import os

    from audit.replay.requirements import missing_requirements
    from audit.runner import checks
    from audit.replay.run import replay_environment

    base = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), **env}
    plan, inputs, smoke_env = replay_environment(folder.resolve(), None, None, base)
    findings = plan.findings + missing_requirements(folder)
    runs = _run_seeds(args, folder, seeds, smoke_env, smoke=True, link_data=inputs.synthetic)
    rows = []
    for r in runs:
        ok = not r.timed_out and r.returncode == 0 and r.summary.val_bpb is not None
        status = "killed" if r.timed_out else ("ok" if ok else "failed")
        if not ok:
            why = f"killed after {args.timeout or SMOKE_TIMEOUT_S:.0f} s" if r.timed_out else (
                f"exit code {r.returncode}" if r.returncode else "no val_bpb in its log")
            findings.append(checks._finding("PG920", "FMT-1", f"seed {r.seed}: the smoke run did not finish end to end "
                                            f"({why}): {_blocker(r.log)}", path=r.log))
        rows.append({"seed": r.seed, "status": status, "wall_seconds": r.wall_seconds, "run_dir": r.run_dir,
                     "log": r.log, "command": r.command, "shrink": dict(plan.shrunk), **r.summary.to_dict()})
    return findings, rows


def _blocker(log: str) -> str:
    """The line of a failed run's log that says why: its last exception line, else its last line."""
    lines = [line.strip() for line in _tail(log, 200).splitlines() if line.strip()]
    exception = re.compile(r"^[\w.]*(Error|Exception|Interrupt)\b")
    return next((line for line in reversed(lines) if exception.match(line) and "ChildFailedError" not in line),
                lines[-1] if lines else "")


def _run_seeds(args, folder: Path, seeds: list[int], env: dict[str, str], smoke: bool = False, link_data=None):
    """`smoke`: run under the replay's boot module with `link_data` (a SynthData) linked into each run folder."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from audit.runner.launch import DEFAULT_TIMEOUT_S, LaunchSpec, launch_seed

    default_timeout = SMOKE_TIMEOUT_S if smoke else DEFAULT_TIMEOUT_S
    spec = LaunchSpec(folder=folder.resolve(), nproc=args.nproc, nnodes=args.nnodes, node_rank=args.node_rank,
                      rdzv_endpoint=args.rdzv_endpoint, timeout_s=args.timeout or default_timeout, env=env,
                      isolate_network=not args.allow_network, smoke=smoke, link_data=link_data)
    runs_root = Path(args.runs) if args.runs else Path("runs") / "validate" / folder.resolve().name
    runs_root.mkdir(parents=True, exist_ok=True)
    results = []
    columns = (TextColumn("seed {task.fields[seed]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        tasks = {seed: progress.add_task("", total=None, start=False, seed=seed) for seed in seeds}
        for seed in seeds:
            task = tasks[seed]
            progress.start_task(task)

            def on_progress(step: int, total: int, task=task) -> None:
                progress.update(task, completed=step, total=total)

            result = launch_seed(spec, seed, runs_root.resolve(), on_progress=on_progress)
            final = progress.tasks[task].total or 1
            progress.update(task, completed=final, total=final)
            results.append(result)
    return results


def _exit_code(report, fail_on: str) -> int:
    levels = {"error": ("error",), "warning": ("error", "warning"), "never": ()}[fail_on]
    return 1 if any(f.severity in levels for f in report.findings) else 0


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_text(report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
    stats = report.stats
    table = Table(title=f"golf validate {report.path} ({stats['mode']}; {stats['network']})")
    for column in ("seed", "status", "val_bpb", "val_loss", "train s", "eval s", "artifact B", "steps", "log"):
        table.add_column(column, justify="left" if column in ("status", "log") else "right")
    for row in stats["seeds"]:
        table.add_row(str(row["seed"]), row["status"], _fmt(row["val_bpb"], ".8f"), _fmt(row["val_loss"], ".6f"),
                      _fmt(row["train_seconds"], ".1f"), _fmt(row["eval_seconds"], ".1f"),
                      _fmt(row["artifact_bytes"], ","), _fmt(row["steps"], "d"), Path(row.get("log") or row["source"]).name)
    console.print(table)
    if stats.get("n"):
        console.print(f"mean val_bpb {stats['mean_val_bpb']:.8f}  std {_fmt(stats['std_val_bpb'], '.8f')}  "
                      f"(n={stats['n']}; {stats['conversion']})")
    if "record" in stats:
        rec = stats["record"]
        console.print(f"record {rec['label']}: {rec['mean_val_bpb']:.8f} (n={rec['n']}); improvement "
                      f"{stats['improvement_bpb']:+.6f} bpb = {stats['improvement_nats']:+.6f} nats")
        for test in stats["significance"]:
            name = "0.005 nats at p<0.01 (README)" if test["rule"] == "readme" else "p<0.25 (frontier practice)"
            verdict = {True: "[green]pass[/]", False: "[red]fail[/]", None: "[yellow]n/a[/]"}[test["passed"]]
            console.print(f"  {name}: {test['test']} t={_fmt(test['statistic'], '.4f')} "
                          f"p={_fmt(test['p_value'], '.4g')} {verdict} {test['note']}")
    for f in report.findings:
        colour = {"error": "red", "warning": "yellow", "note": "cyan"}[f.severity]
        where = f"{f.path}: " if f.path else ""
        console.print(f"[{colour}]{f.severity}[/] {f.code} {f.rule} {where}{f.message}", highlight=False)
    if "plot" in stats:
        console.print(f"plot: {stats['plot']}")
    console.print(f"verdict: {report.verdict}")
