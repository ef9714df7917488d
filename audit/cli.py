"""`golf audit PATH...`: the static audit of submission folders or files, optionally with replay.

Instead of paths: `--pr N [--repo GIT_DIR_OR_URL]` audits the records folders pull request N adds or
changes, read from refs/pull/N/head without touching the clone's work tree (audit/pr.py); the report
names the folders as the repository does and carries the PR's number, title and date (stats.pr) and
the record of that date with the significance of the PR's seeds (stats.review); the repository is
also where STAT-1 (PG016) finds the record, unless GOLF_REPO names another clone. A PR that changes
no records folder is not an input error: one note on stderr, an empty report, exit 0 (a CI job on
a PR that only edits docs passes). `--staged` audits the records folders staged for commit, as the
index holds them (the pre-commit hook of docs/ci/).

Several paths are audited in parallel over the cores (one process each, like `ruff check`). Human
output goes to stderr through rich; --format json|sarif|github|markdown go to stdout (or --output).
Exit codes: 0 clean at the --fail-on level, 1 findings, 2 usage / input / internal error. The
static path never imports torch, so the command starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("paths", nargs="*", metavar="PATH", help="submission folder(s) or .py file(s)")
    parser.add_argument("--log", action="append", default=[], metavar="F",
                        help="a run log to read hyperparameters and claims from (one PATH only; repeatable)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--fail-on", choices=("error", "warning"), default="error",
                        help="lowest severity that makes the exit code 1 (default: error)")
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="parallel processes for several paths (default: the number of cores)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout/stderr")
    source = parser.add_argument_group("audit a pull request or a commit instead of PATHs")
    source.add_argument("--pr", type=int, metavar="N", help="the records folders pull request N adds or changes")
    source.add_argument("--repo", metavar="GIT_DIR_OR_URL",
                        help="--pr: clone, bare repository or URL holding refs/pull/N/head (default: the current one)")
    source.add_argument("--base", default="main", metavar="BRANCH", help="--pr: the branch the PR targets (default: main)")
    source.add_argument("--staged", action="store_true", help="the records folders with changes staged for commit")
    replay = parser.add_argument_group("dynamic audit")
    replay.add_argument("--replay", action="store_true", help="also run the instrumented replay of the evaluation")
    replay.add_argument("--data", metavar="DIR", help="replay: data folder (shards in the real format)")
    replay.add_argument("--tokenizer", metavar="FILE", help="replay: sentencepiece model")
    replay.add_argument("--replay-timeout", type=float, default=None, metavar="S", help="replay: time limit in seconds")


def _notes(normalized) -> list[str]:
    return [f"{n.path}:{n.line}: {n.kind}: {n.detail}" for n in normalized.notes]


def audit_static(path: str, logs: tuple[str, ...] = (), date=None) -> Report:
    """The static audit of one path as a Report; bad input becomes Report.error, never raises.
    `date` (a datetime.date) is the submission's date when the caller knows it better than the
    folder does (a PR's date): rulings that apply from a date on are judged at it."""
    from audit.static.engine import run_rules
    from audit.submission import build_context, load_submission

    start = time.perf_counter()
    report = Report(path=path)
    try:
        sub = load_submission(path, list(logs))
        ctx = build_context(sub)
        ctx.given_date = date  # read by audit.rulings.context_date when the folder names no date
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


def _audit_all(paths: list[str], logs: tuple[str, ...], jobs: int, date=None) -> list[Report]:
    if len(paths) == 1 or jobs == 1:
        return [audit_static(p, logs, date) for p in paths]
    # Load the engine and the rules once before forking, so each worker starts with them imported.
    from audit.static.engine import load_rules

    load_rules()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        return list(pool.map(audit_static, paths, [logs] * len(paths), [date] * len(paths)))


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


def _jobs(args: argparse.Namespace, count: int) -> int:
    if args.jobs < 0:
        raise GolfError("--jobs must be 0 (all cores) or more")
    return args.jobs or max(1, min(count, os.cpu_count() or 1))


def _check_sources(args: argparse.Namespace) -> None:
    chosen = [name for name, given in (("PATH", bool(args.paths)), ("--pr", args.pr is not None),
                                       ("--staged", args.staged)) if given]
    if len(chosen) != 1:
        raise GolfError("give PATH(s), --pr N or --staged (one of them)" if not chosen
                        else f"{' and '.join(chosen)} exclude each other; give one")
    if args.log and (len(args.paths) != 1):
        raise GolfError("--log applies to one PATH; audit the paths one by one")
    if (args.repo or args.base != "main") and args.pr is None:
        raise GolfError("--repo and --base apply to --pr")


def run(args: argparse.Namespace) -> int:
    _check_sources(args)
    if args.pr is not None:
        return _run_pr(args)
    if args.staged:
        return _run_staged(args)
    paths = list(args.paths)
    reports = _audit_all(paths, tuple(args.log), _jobs(args, len(paths)))
    if len(reports) == 1 and reports[0].error is not None:
        raise GolfError(reports[0].error)  # one path: one clear line, nothing on stdout
    if args.replay:
        for report in reports:
            if report.error is None:
                _replay(report, args)
    return _finish(reports, args)


def _finish(reports: list[Report], args: argparse.Namespace) -> int:
    for report in reports:
        if report.error is not None:
            print(f"golf: error: {report.error}", file=sys.stderr)
    _emit(reports, args)
    return exit_code(reports, args.fail_on)


def _audit_extracted(root: Path, folders: list[str], args: argparse.Namespace, date=None) -> list[Report]:
    """Audit `folders` written under `root` (a temporary folder), replay them when asked while they
    still exist, and name each report by its folder in the repository (as annotations need)."""
    reports = _audit_all([str(root / f) for f in folders], (), _jobs(args, len(folders)), date)
    for folder, report in zip(folders, reports):
        if args.replay and report.error is None:
            _replay(report, args)
        report.path = folder
        if report.stats:
            report.stats["root"] = folder
        if report.error is not None:
            report.error = report.error.replace(f"{root}/", "")
    if len(reports) == 1 and reports[0].error is not None:
        raise GolfError(reports[0].error)
    return reports


def _nothing_to_audit(what: str, args: argparse.Namespace) -> int:
    print(f"golf: note: {what} changes no records folder (records/<track>/<folder>/); nothing to audit",
          file=sys.stderr)
    if args.format != "text":
        _emit([], args)
    return 0


@contextlib.contextmanager
def _leaderboard_repo(git_dir: str):
    """The PR's repository as the clone STAT-1 (PG016) reads the record from, unless GOLF_REPO names one."""
    from audit.leaderboard import REPO_ENV

    if os.environ.get(REPO_ENV):
        yield
        return
    os.environ[REPO_ENV] = git_dir
    try:
        yield
    finally:
        os.environ.pop(REPO_ENV, None)


def _run_pr(args: argparse.Namespace) -> int:
    import tempfile

    from audit import pr as pulls
    from audit.review import review_facts

    with tempfile.TemporaryDirectory(prefix=f"golf-pr{args.pr}-") as tmp:
        fetched = bool(args.repo) and pulls.is_url(args.repo)
        if fetched:
            git_dir = pulls.fetch_remote(args.repo, args.pr, args.base, Path(tmp) / "fetched.git")
        else:
            git_dir = pulls.local_git_dir(args.repo)
        request = pulls.open_pr(git_dir, args.pr, args.base)
        if fetched:
            request.repo = args.repo  # the fetched copy goes with the temporary folder
        if not request.folders:
            return _nothing_to_audit(f"PR #{args.pr}", args)
        root = Path(tmp) / "head"
        request.skipped_blobs = pulls.extract_commit(git_dir, request.head, request.folders, root)
        for name in request.skipped_blobs:
            print(f"golf: note: {name} is not in the repository (partial mirror); audited without it", file=sys.stderr)
        with _leaderboard_repo(git_dir):
            reports = _audit_extracted(root, request.folders, args, request.date)
        for folder, report in zip(request.folders, reports):
            if report.error is None:
                report.stats["pr"] = request.to_dict()
                report.stats["review"] = review_facts(git_dir, request.base_ref, root / folder, folder, request.date)
    return _finish(reports, args)


def _run_staged(args: argparse.Namespace) -> int:
    import tempfile

    from audit import pr as pulls

    folders = pulls.staged_folders(".")
    if not folders:
        return _nothing_to_audit("the commit", args)
    with tempfile.TemporaryDirectory(prefix="golf-staged-") as tmp:
        pulls.extract_index(".", folders, Path(tmp))
        reports = _audit_extracted(Path(tmp), folders, args)
    return _finish(reports, args)


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
