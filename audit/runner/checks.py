"""Findings of a multi-seed validation: folder layout, each seed's run and budgets, the seed set,
the claims of submission.json against the logs, and the significance against the record.

Stable codes PG901-PG912 (the runner's range), each naming the rule of shared/spec/rules.md it enforces.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Sequence

from audit.finding import Finding
from audit.runner.logs import RunSummary

TRAIN_LIMIT_S = 600.0
EVAL_LIMIT_S = 600.0
ARTIFACT_LIMIT_BYTES = 16_000_000
MIN_SEEDS = 3


def _finding(code: str, rule: str, message: str, path: str = "", severity: str = "error",
             evidence: str = "", confidence: str = "high") -> Finding:
    return Finding(code=code, rule=rule, severity=severity, confidence=confidence, path=path,
                   line=0, col=0, message=message, evidence=evidence)


def read_submission_json(folder: Path) -> tuple[dict | None, list[Finding]]:
    """submission.json parsed, or a FMT-1 finding saying why not."""
    path = folder / "submission.json"
    if not path.is_file():
        return None, [_finding("PG902", "FMT-1", "submission.json is missing", "submission.json")]
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, [_finding("PG902", "FMT-1", f"submission.json is not valid JSON: {exc}", "submission.json")]
    if not isinstance(meta, dict):
        return None, [_finding("PG902", "FMT-1", "submission.json is not a JSON object", "submission.json")]
    return meta, []


def missing_seed_findings(requested: Sequence[int], summaries: Sequence[RunSummary]) -> list[Finding]:
    """SEED-1: seeds asked for that no log reports."""
    missing = sorted(set(requested) - {s.seed for s in summaries})
    if not missing:
        return []
    return [_finding("PG909", "SEED-1", f"no log for seed(s) {missing}")]


def layout_findings(folder: Path, entry: str = "train_gpt.py") -> list[Finding]:
    if (folder / entry).is_file():
        return []
    return [_finding("PG901", "FMT-1", f"{entry} is missing: the submission cannot be run", entry)]


def run_findings(seed: int, summary: RunSummary, log: str, timed_out: bool = False,
                 returncode: int | None = 0, timeout_s: float | None = None, log_tail: str = "") -> list[Finding]:
    """One seed: killed at its wallclock limit, failed, unscored, over a time or size budget."""
    out = []
    if timed_out:
        # a log that got past training (a stop line, a serialised model) was killed while evaluating
        evaluating = summary.stopped_early or summary.model_bytes is not None or summary.artifact_bytes is not None
        code, rule, phase = ("PG905", "BUD-E", "evaluation") if evaluating else ("PG904", "BUD-T", "training")
        out.append(_finding(code, rule, f"seed {seed} was killed at its {timeout_s:g} s wallclock limit during "
                            f"{phase} (its whole process tree)", log, evidence=log_tail))
    elif returncode not in (0, None):
        out.append(_finding("PG903", "FMT-1", f"seed {seed}: train_gpt.py exited with code {returncode}", log,
                            evidence=log_tail))
    if summary.val_bpb is None and not timed_out:
        out.append(_finding("PG903", "FMT-1", f"seed {seed}: the log reports no val_bpb", log, evidence=log_tail))
    if summary.train_seconds is not None and summary.train_seconds > TRAIN_LIMIT_S:
        out.append(_finding("PG904", "BUD-T", f"seed {seed}: training took {summary.train_seconds:.1f} s "
                            f"(> {TRAIN_LIMIT_S:g} s)", log, evidence=f"train_time:{summary.train_seconds * 1000:.0f}ms"))
    if summary.eval_seconds is not None and summary.eval_seconds > EVAL_LIMIT_S:
        out.append(_finding("PG905", "BUD-E", f"seed {seed}: evaluation took {summary.eval_seconds:.1f} s "
                            f"(> {EVAL_LIMIT_S:g} s)", log, evidence=f"eval {summary.eval_seconds:.1f} s"))
    if summary.artifact_bytes is not None and summary.artifact_bytes > ARTIFACT_LIMIT_BYTES:
        out.append(_finding("PG906", "SIZE-1", f"seed {seed}: artifact {summary.artifact_bytes:,} bytes "
                            f"(> {ARTIFACT_LIMIT_BYTES:,})", log,
                            evidence=f"Total submission size: {summary.artifact_bytes} bytes"))
    return out


def seed_set_findings(summaries: Sequence[RunSummary]) -> list[Finding]:
    """STAT-2: at least three scored seeds, all of one configuration and one code."""
    out = []
    scored = [s for s in summaries if s.val_bpb is not None]
    if len(scored) < MIN_SEEDS:
        out.append(_finding("PG907", "STAT-2", f"{len(scored)} scored seed(s): a record needs at least {MIN_SEEDS}"))
    hashes = {s.code_hash for s in scored if s.code_hash}
    if len(hashes) > 1:
        out.append(_finding("PG908", "STAT-2", "the seed logs come from different code",
                            evidence=", ".join(f"{s.source}: {(s.code_hash or '?')[:12]}" for s in scored)))
    configs = [s for s in scored if s.config]
    if configs:
        keys = set().union(*(s.config for s in configs))
        differing = sorted(k for k in keys if len({s.config.get(k) for s in configs}) > 1)
        if differing:
            detail = "; ".join(f"{k}: " + ", ".join(f"{s.source}={s.config.get(k)}" for s in configs) for k in differing[:5])
            out.append(_finding("PG908", "STAT-2", f"the seeds ran different configurations ({', '.join(differing[:5])})",
                                evidence=detail))
    return out


def _half_unit(value: float) -> float:
    """Half a unit in the last decimal `value` was written with (1.1150 -> 0.0005 as JSON keeps 1.115)."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 8
    return 0.5 * 10.0 ** -decimals + 1e-12


def _differ(claimed: float, logged: float, floor: float) -> bool:
    """Different beyond the coarser of the two printed precisions (and beyond `floor`)."""
    return abs(claimed - logged) > max(_half_unit(claimed), _half_unit(logged), floor)


def claim_findings(meta: dict[str, Any], summaries: Sequence[RunSummary], reproduced: bool,
                   tolerance: float = 0.0) -> list[Finding]:
    """submission.json against the logs: seeds (SEED-1), per-seed and mean val_bpb (STAT-2), bytes
    (SIZE-1). `reproduced`: the logs come from our own re-run, so a difference within `tolerance` is
    expected and a larger one is a warning; the shipped logs must agree to the claim's precision."""
    out = []
    scored = [s for s in summaries if s.val_bpb is not None]
    severity = "warning" if reproduced else "error"
    what, gives = ("the re-run", "gives") if reproduced else ("the logs", "give")
    floor = tolerance if reproduced else 0.0

    claimed_seeds = _claimed_seeds(meta)
    logged_seeds = {s.seed for s in scored}
    if claimed_seeds is not None and not reproduced and claimed_seeds != logged_seeds:
        out.append(_finding("PG909", "SEED-1", f"submission.json lists seeds {sorted(claimed_seeds)} but the logs "
                            f"score seeds {sorted(x for x in logged_seeds if x is not None)}", "submission.json"))

    per_seed = meta.get("seed_results") if isinstance(meta.get("seed_results"), dict) else {}
    for s in scored:
        row = per_seed.get(str(s.seed))
        if isinstance(row, dict) and isinstance(row.get("val_bpb"), (int, float)):
            if _differ(row["val_bpb"], s.val_bpb, floor):
                out.append(_finding("PG910", "STAT-2", f"seed {s.seed}: submission.json says val_bpb {row['val_bpb']} "
                                    f"but {what} {gives} {s.val_bpb}", "submission.json", severity=severity,
                                    evidence=f"{s.source}: {s.score_label} val_bpb:{s.val_bpb}"))
    claimed = meta.get("val_bpb")
    if isinstance(claimed, (int, float)) and scored:
        mean = sum(s.val_bpb for s in scored) / len(scored)
        logged_precision = max(_half_unit(s.val_bpb) for s in scored)
        if abs(claimed - mean) > max(_half_unit(claimed), logged_precision, floor):
            out.append(_finding("PG910", "STAT-2", f"submission.json says val_bpb {claimed} but the mean of {what} "
                                f"over {len(scored)} seed(s) is {mean:.8f}", "submission.json", severity=severity))
    claimed_bytes = meta.get("bytes_total", meta.get("artifact_bytes"))
    logged_bytes = [s.artifact_bytes for s in scored if s.artifact_bytes is not None]
    if isinstance(claimed_bytes, int) and logged_bytes and max(logged_bytes) > claimed_bytes:
        out.append(_finding("PG912", "SIZE-1", f"submission.json says {claimed_bytes:,} bytes but {what} show an "
                            f"artifact of {max(logged_bytes):,} bytes", "submission.json", severity=severity))
    return out


def _claimed_seeds(meta: dict[str, Any]) -> set[int] | None:
    seeds = meta.get("seeds")
    if isinstance(seeds, dict):  # some records key per-seed results under "seeds"
        seeds = list(seeds)
    if not isinstance(seeds, list):
        results = meta.get("seed_results")
        seeds = list(results) if isinstance(results, dict) else None
    if seeds is None:
        return None
    try:
        return {int(x) for x in seeds}
    except (TypeError, ValueError):
        return None


def significance_findings(stats: dict[str, Any], date: dt.date | None = None) -> list[Finding]:
    """STAT-1 from the statistics block, with the severity policy of audit/rulings.py for a
    submission dated `date`: failing the p < 0.25 frontier rule too is an error, failing only the
    README's 0.005-nat rule a warning (section D1), passing both a note."""
    from audit.rulings import stat1_severity

    tests = {s["rule"]: s for s in stats.get("significance", [])}
    if not tests:
        return []
    frontier, readme = tests["frontier"], tests["readme"]
    record = stats["record"]
    evidence = (f"mean {stats['mean_val_bpb']:.6f} vs record {record['mean_val_bpb']:.6f} ({record['label']}); "
                f"improvement {stats['improvement_bpb']:.6f} bpb = {stats['improvement_nats']:.6f} nats; "
                + "; ".join(f"{t['rule']} p={t['p_value'] if t['p_value'] is None else format(t['p_value'], '.4g')}"
                            for t in (readme, frontier)))
    severity, why = stat1_severity({"readme": readme["passed"], "frontier": frontier["passed"]}, date)
    if severity is None:
        return [_finding("PG911", "STAT-1", f"not a significant improvement on the record ({frontier['note'] or why})",
                         evidence=evidence)]
    return [_finding("PG911", "STAT-1", why, severity=severity, evidence=evidence)]
