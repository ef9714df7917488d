"""PG016 STAT-1: the seeds do not show a significant improvement on the record of the submission's day."""

from __future__ import annotations

import datetime as dt
import os

from audit.leaderboard import RECORD_SUPPORT, REPO_ENV, Row, per_seed_scores, significance_table, standing_record
from audit.rulings import context_date, stat1_severity
from audit.static.evidence import run_logs
from audit.static.rule import Rule
from golf.errors import GolfError

RECORD_ENV = "GOLF_RECORD"  # an explicit record val_bpb (takes precedence over the repository)
CLAIMED_BASELINE_KEYS = ("comparison_baseline_bpb", "baseline_bpb", "previous_record_bpb")


def _seeds(path: str, bpb: list[float], loss: list[float] | None = None) -> dict:
    files = {"train_gpt.py": "print(1)\n"}
    for i, value in enumerate(bpb):
        val_loss = f"{loss[i]:.8f}" if loss else f"{value * 2.3:.8f}"
        files[f"train_seed{i}.log"] = f"seed: {i}\nfinal_int8_zlib_roundtrip_exact val_loss:{val_loss} val_bpb:{value:.8f}\n"
    files["submission.json"] = path
    return files


_META = '{{"name": "x", "author": "a", "date": "{date}", "val_bpb": {mean}, "comparison_baseline_bpb": 1.1000}}'


class Significance(Rule):
    """A record must beat the record standing on its day. Two rules were used (rules.md STAT-1, D1):
    the README's, an improvement of at least 0.005 nats at p < 0.01, and from 2026-04-28 the
    maintainers' practice, any improvement at p < 0.25, both one-sided Welch t-tests of the seeds'
    val_bpb against the record's seeds (a one-sample test against a single number).

    The seeds are the folder's scored run logs (one per seed), else submission.json's per-seed
    results. The record is, in this order: the GOLF_RECORD environment variable (a val_bpb), the
    leaderboard of the clone named by GOLF_REPO (`golf leaderboard`: the best merged record submitted
    before the submission's date, the folder's date prefix or submission.json's date: the
    chronological frontier, CHRONO-1), or the baseline
    submission.json says it compares with (`comparison_baseline_bpb`). With none of them, or for a
    non-record submission or a record_support reproduction (its seeds count for the PR it supports),
    the rule says nothing. Failing both tests is an error; failing only the
    README's 0.005-nat rule is a warning (fewer than 15 % of merged records met it, Issue #2148);
    fewer than 2 seeds cannot be tested (a note; STAT-2 wants 3). The finding carries the table.
    """

    code = "PG016"
    rule = "STAT-1"
    severity = "error"
    confidence = "medium"
    references = ("#1900", "#1902", "Issue #2148", "#181", "#473")
    summary = "not a significant improvement on the record of the submission's day"

    VALID = [
        _seeds(_META.format(date="2026-04-29", mean=1.0903), [1.0901, 1.0905, 1.0903]),
    ]
    INVALID = [
        # no better than the record: fails p < 0.25 and the README rule
        _seeds(_META.format(date="2026-04-29", mean=1.1001), [1.0990, 1.1010, 1.1003]),
        # better, but only by ~0.0007 nats: passes p < 0.25, fails the README rule (a warning)
        _seeds(_META.format(date="2026-04-29", mean=1.0997), [1.0995, 1.0999, 1.0997]),
    ]

    def check(self, ctx):
        meta = ctx.submission if isinstance(ctx.submission, dict) else {}
        if ctx.non_record or meta.get("submission_type") == RECORD_SUPPORT:  # no record claim of its own
            return
        bpb, losses, source = self._candidate(ctx, meta)
        if not bpb:
            return
        date, date_source = context_date(ctx)
        record, record_source = self._record(ctx, meta, date)
        if record is None:
            return
        table = significance_table(bpb, record, on=date, candidate_losses=losses)
        severity, why = stat1_severity({t["rule"]: t["passed"] for t in table}, date)
        mean, rec = table[0]["mean"], table[0]["record"]
        head = (f"{len(bpb)} seed(s) from {source}, mean {mean:.6f} vs record {rec:.6f} ({record_source}); "
                f"submission dated {date or 'unknown'} ({date_source})")
        if severity is None:
            yield self.finding(None, 0, f"significance not tested ({table[0]['note'] or why}): {head}",
                               path="submission.json", severity="note", evidence=_evidence(table))
            return
        yield self.finding(None, 0, f"{why}: {head}", path="submission.json", severity=severity,
                           evidence=_evidence(table))

    @staticmethod
    def _candidate(ctx, meta: dict) -> tuple[list[float], list[float], str]:
        """(per-seed val_bpb, val_loss when every seed logs it, where they came from)."""
        by_seed = {}
        for name, run in run_logs(ctx).items():
            if run.val_bpb is not None:
                by_seed.setdefault(run.seed if run.seed is not None else name, run)  # one score per seed
        if len(by_seed) >= 2:
            runs = list(by_seed.values())
            losses = [r.val_loss for r in runs if r.val_loss is not None]
            return [r.val_bpb for r in runs], losses if len(losses) == len(runs) else [], "the run logs"
        claimed = per_seed_scores(meta) or []
        if claimed:
            return claimed, [], "submission.json"
        return [r.val_bpb for r in by_seed.values()], [], "the run logs"

    @staticmethod
    def _record(ctx, meta: dict, date: dt.date | None) -> tuple[Row | None, str]:
        on = date or dt.date.today()
        explicit = os.environ.get(RECORD_ENV)
        if explicit:
            try:
                value = float(explicit)
            except ValueError:
                raise GolfError(f"{RECORD_ENV}={explicit!r}: expected a val_bpb number") from None
            return Row(val_bpb=value, date=on, folder=f"{RECORD_ENV}", name="given record"), f"{RECORD_ENV}={value}"
        repo = os.environ.get(REPO_ENV)
        if repo:
            row = standing_record(repo, date, ctx.root.name, meta)
            if row is None:
                return None, ""
            pr = f"#{row.pr} " if row.pr else ""
            return row, f"{pr}{row.folder}, merged {row.date}"
        for key in CLAIMED_BASELINE_KEYS:
            value = meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return Row(val_bpb=float(value), date=on, folder=key, name="claimed baseline"), \
                    f"submission.json {key}"
        return None, ""


def _evidence(table: list[dict]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = []
    for t in table:
        verdict = {True: "pass", False: "fail", None: "n/a"}[t["passed"]]
        applied = "" if "applied" not in t else (" (in force)" if t["applied"] else " (not yet in force)")
        lines.append(f"{t['label']}{applied}: delta {fmt(t['delta'], '+.6f')} bpb, margin {t['margin_bpb']:.6f}, "
                     f"{t['test']} t={fmt(t['t'], '.3f')} p={fmt(t['p'], '.4g')}: {verdict}")
    return "\n".join(lines)
