"""Multi-seed statistics: mean, sample std, and significance against the previous record.

The challenge used two rules (shared/spec/rules.md STAT-1, section D1), both one-sided Welch tests
of the seeds' val_bpb against the record's (a one-sample t-test when the record is a single number):
* README rule: the mean improves on the record by at least 0.005 nats, at p < 0.01;
  H1: mean(new) < mean(record) - margin;
* frontier practice (from 2026-04-28): any improvement at p < 0.25; H1: mean(new) < mean(record).

nats <-> bpb: val_loss is nats per token and val_bpb = val_loss / ln 2 * tokens / bytes, so one bpb is
worth val_loss / val_bpb nats per token (= ln 2 * bytes per token of the validation text). The factor is
the mean ratio of the candidate's own seeds, as the records quote "0.0199 BPB / 0.0436 nats"; without
val_loss in the logs it falls back to ln 2 (nats per byte) and says so.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from scipy.special import stdtr  # Student's t CDF; scipy.stats costs ~1 s more to import on the static path

from golf.errors import GolfError

NATS_MARGIN = 0.005
README_ALPHA = 0.01
FRONTIER_ALPHA = 0.25


@dataclass
class Sample:
    """Seed scores of one configuration: val_bpb per seed, val_loss per seed where logged."""

    label: str
    bpb: list[float]
    val_loss: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.bpb)

    def mean(self) -> float:
        return statistics.fmean(self.bpb)

    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None for a single value."""
        return statistics.stdev(self.bpb) if self.n > 1 else None

    def nats_per_bpb(self) -> tuple[float, str]:
        if self.val_loss and len(self.val_loss) == self.n:
            factor = statistics.fmean(l / b for l, b in zip(self.val_loss, self.bpb))
            return factor, "nats per token = bpb * mean(val_loss / val_bpb) of the candidate seeds"
        return math.log(2), "val_loss not logged: nats per byte = bpb * ln 2"


@dataclass
class Significance:
    rule: str  # "readme" (0.005 nats, p < 0.01) | "frontier" (p < 0.25)
    test: str  # "welch" | "one-sample"
    alpha: float
    margin_nats: float
    margin_bpb: float
    statistic: float | None
    p_value: float | None
    passed: bool | None  # None when the test cannot be computed (fewer than 2 seeds, zero variance)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(mean difference, its standard error, Welch-Satterthwaite degrees of freedom) of a - b."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = va + vb
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1)) if se2 > 0 else math.nan
    return statistics.fmean(a) - statistics.fmean(b), math.sqrt(se2), df


def _one_sample(a: Sequence[float], mu: float) -> tuple[float, float, float]:
    """(mean - mu, standard error of the mean, degrees of freedom)."""
    return statistics.fmean(a) - mu, statistics.stdev(a) / math.sqrt(len(a)), len(a) - 1.0


def _t_less(diff: float, se: float, df: float) -> tuple[float | None, float | None]:
    """One-sided t-test that the true difference is below 0: (t, p); (None, None) with zero variance."""
    if not se > 0:
        return None, None
    t = diff / se
    return _finite(t), _finite(float(stdtr(df, t)))


def significance(new: Sample, record: Sample) -> list[Significance]:
    """Both challenge rules for `new` against `record` (a sample of seeds or a single number)."""
    factor, _ = new.nats_per_bpb()
    results = []
    for rule, margin_nats, alpha in (("readme", NATS_MARGIN, README_ALPHA), ("frontier", 0.0, FRONTIER_ALPHA)):
        margin_bpb = margin_nats / factor
        test = "welch" if record.n >= 2 else "one-sample"
        note = ""
        if new.n < 2:
            statistic = p_value = None
            note = "needs at least 2 seeds for a t-test"
        elif test == "welch":
            statistic, p_value = _t_less(*_welch([b + margin_bpb for b in new.bpb], record.bpb))
        else:
            statistic, p_value = _t_less(*_one_sample(new.bpb, record.bpb[0] - margin_bpb))
        if new.n >= 2 and p_value is None:
            note = "t-test undefined (zero variance)"
        passed = None if p_value is None else p_value < alpha
        results.append(Significance(rule, test, alpha, margin_nats, margin_bpb, statistic, p_value, passed, note))
    return results


def summarize(new: Sample, record: Sample | None) -> dict[str, Any]:
    """The statistics block of `golf validate` JSON."""
    factor, conversion = new.nats_per_bpb()
    out: dict[str, Any] = {
        "n": new.n,
        "mean_val_bpb": new.mean() if new.n else None,
        "std_val_bpb": new.std(),
        "mean_val_loss": statistics.fmean(new.val_loss) if new.val_loss else None,
        "nats_per_bpb": factor,
        "conversion": conversion,
    }
    if record is not None and new.n:
        improvement = record.mean() - new.mean()
        out["record"] = {"label": record.label, "n": record.n, "mean_val_bpb": record.mean(), "std_val_bpb": record.std()}
        out["improvement_bpb"] = improvement
        out["improvement_nats"] = improvement * factor
        out["significance"] = [s.to_dict() for s in significance(new, record)]
    return out


def record_sample(against: str) -> Sample:
    """The record to compare with: a val_bpb number, or a submission folder (its seed logs, else the
    per-seed results of its submission.json, else its headline val_bpb)."""
    try:
        return Sample(label=against, bpb=[float(against)])
    except ValueError:
        pass
    folder = Path(against)
    if not folder.is_dir():
        raise GolfError(f"--against {against!r} is neither a val_bpb number nor a folder")
    from audit.runner.logs import read_seed_logs

    logs = read_seed_logs(folder)
    if logs:
        losses = [s.val_loss for s in logs if s.val_loss is not None]
        return Sample(folder.name, [s.val_bpb for s in logs], losses if len(losses) == len(logs) else [])
    meta_path = folder / "submission.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise GolfError(f"--against {against}: no seed logs and no readable submission.json ({exc})") from exc
    per_seed = meta.get("seed_results") or (meta.get("seeds") if isinstance(meta.get("seeds"), dict) else None)
    if per_seed:
        rows = [r for r in per_seed.values() if isinstance(r, dict) and "val_bpb" in r]
        if rows:
            return Sample(folder.name, [float(r["val_bpb"]) for r in rows])
    if "val_bpb" in meta:
        return Sample(folder.name, [float(meta["val_bpb"])])
    raise GolfError(f"--against {against}: submission.json has no val_bpb")


def sample_of(summaries: Sequence, label: str = "candidate") -> Sample:
    """A Sample from RunSummary-like objects (val_bpb, val_loss attributes)."""
    scored = [s for s in summaries if s.val_bpb is not None]
    losses = [s.val_loss for s in scored if s.val_loss is not None]
    return Sample(label, [s.val_bpb for s in scored], losses if len(losses) == len(scored) else [])
