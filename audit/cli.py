"""`golf audit PATH...`: the static audit of submission folders or files, optionally with replay.

Several paths are audited in parallel over the cores (one process each, like `ruff check`). Human
output goes to stderr through rich; --format json|sarif|github|markdown go to stdout (or --output).
Exit codes: 0 clean at the --fail-on level, 1 findings, 2 usage / input / internal error. The
static path never imports torch, so the command starts fast.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from audit.finding import Finding, Report
from audit.report import FORMATS
from golf.errors import GolfError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="submission folder(s) or .py file(s)")
    parser.add_argument("--log", action="append", default=[], metavar="F",
                        help="a run log to read hyperparameters and claims from (one PATH only; repeatable)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--fail-on", choices=("error", "warning"), default="error",
                        help="lowest severity that makes the exit code 1 (default: error)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="parallel processes for several paths (default: the number of cores)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout/stderr")
    replay = parser.add_argument_group("dynamic audit")
    replay.add_argument("--replay", action="store_true", help="also run the instrumented replay of the evaluation")
    replay.add_argument("--data", metavar="DIR", help="replay: data folder (shards in the real format)")
    replay.add_argument("--tokenizer", metavar="FILE", help="replay: sentencepiece model")
    replay.add_argument("--replay-timeout", type=float, default=None, metavar="S", help="replay: time limit in seconds")


def _notes(normalized) -> list[str]:
    return [f"{n.path}:{n.line}: {n.kind}: {n.detail}" for n in normalized.notes]


def audit_static(path: str, logs: tuple[str, ...] = ()) -> Report:
    """The static audit of one path as a Report; bad input becomes Report.error, never raises."""
    from audit.static.engine import run_rules
    from audit.submission import build_context, load_submission

    start = time.perf_counter()
    report = Report(path=path)
    try:
        sub = load_submission(path, list(logs))
        ctx = build_context(sub)
        report.findings = run_rules(ctx)
    except GolfError as exc:
        report.error = str(exc)
        return report
    except Exception as exc:  # a bug in a rule must not hide the other paths' reports
        if os.environ.get("GOLF_DEBUG"):
            raise
        report.error = f"internal error: {type(exc).__name__}: {exc}"
        return report
    from audit.static.evidence import code_inventory

    normalized = ctx.normalized
    inventory = code_inventory(ctx)
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    report.stats = {
        "root": root.as_posix(),
        "entry": sub.entry,
        "files": normalized.files,
        "lines": normalized.text.count("\n"),
        "bytes": sum(len(sub.python[f].encode("utf-8")) for f in normalized.files if f in sub.python),
        "code_bytes": {"entry": inventory.entry_bytes, "entry_decoded": inventory.decoded_bytes,
                       "entry_is_wrapper": inventory.entry_is_wrapper, "all_shipped": inventory.shipped_bytes,
                       "shipped_files": len(inventory.shipped)},
        "logs": sorted(sub.logs),
        "config_source": ctx.config_source,
        "normalization": _notes(normalized),
        "virtual_files": {name: list(where) for name, where in normalized.virtual.items()},
        "seconds": round(time.perf_counter() - start, 3),
    }
    return report


def _audit_all(paths: list[str], logs: tuple[str, ...], jobs: int) -> list[Report]:
    if len(paths) == 1 or jobs == 1:
        return [audit_static(p, logs) for p in paths]
    # Load the engine and the rules once before forking, so each worker starts with them imported.
    from audit.static.engine import load_rules

    load_rules()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        return list(pool.map(audit_static, paths, [logs] * len(paths)))


def _replay(report: Report, args: argparse.Namespace) -> None:
    try:
        import audit.replay as replay
    except ImportError:
        replay = None
    run_replay = getattr(replay, "run_replay", None)
    if run_replay is None:
        raise GolfError("replay not available")
    root = Path(report.stats.get("root") or report.path)
    options = {"data": Path(args.data) if args.data else None,
               "tokenizer": Path(args.tokenizer) if args.tokenizer else None}
    if args.replay_timeout is not None:
        options["timeout_s"] = args.replay_timeout
    findings, summary = run_replay(root, **options)
    report.findings = list(report.findings) + [f for f in findings if isinstance(f, Finding)]
    report.replay = dict(summary or {})


def exit_code(reports: list[Report], fail_on: str) -> int:
    if any(r.error is not None for r in reports):
        return 2
    failing = ("error",) if fail_on == "error" else ("error", "warning")
    return 1 if any(f.severity in failing for r in reports for f in r.findings) else 0


def run(args: argparse.Namespace) -> int:
    paths = list(args.paths)
    if args.log and len(paths) > 1:
        raise GolfError("--log applies to one PATH; audit the paths one by one")
    if args.jobs < 0:
        raise GolfError("--jobs must be 0 (all cores) or more")
    jobs = args.jobs or min(len(paths), os.cpu_count() or 1)
    reports = _audit_all(paths, tuple(args.log), jobs)
    if len(reports) == 1 and reports[0].error is not None:
        raise GolfError(reports[0].error)  # one path: one clear line, nothing on stdout
    if args.replay:
        for report in reports:
            if report.error is None:
                _replay(report, args)
    for report in reports:
        if report.error is not None:
            print(f"golf: error: {report.error}", file=sys.stderr)
    _emit(reports, args)
    return exit_code(reports, args.fail_on)


def _emit(reports: list[Report], args: argparse.Namespace) -> None:
    from audit.report import render

    if args.format == "text" and not args.output:
        from rich.console import Console

        from audit.report.text import print_reports

        print_reports(reports, Console(stderr=True))
        return
    text = render(reports, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise GolfError(f"{args.output}: cannot write: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
