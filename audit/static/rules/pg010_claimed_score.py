"""PG010 STAT-2: the val_bpb that README/submission.json claims is not what the logs show."""

from __future__ import annotations

from statistics import mean

from audit.static.evidence import claims, run_logs
from audit.static.rule import Rule

TOLERANCE = 5e-4  # claims are rounded to 4 decimals; the mean of 3 seeds to about this much


class ClaimedScore(Rule):
    """A record's val_bpb is the mean over its submitted seeds' runs of the same configuration
    (README: "an average over 3 training runs"; cocohearts on #1963, #2020, #2121, #2124, #2139:
    single-seed or mixed-config means rejected). The claimed number must therefore follow from
    the logs shipped with it.

    Compares the claim (submission.json val_bpb, else the README) with each log's reported score
    (the last reported evaluation line) and with their mean. A claim better than every logged run
    is an error when the logs are the claimed runs (nothing shipped supports it), a warning when
    fewer logs than claimed seeds are shipped; a claim off the mean by more than rounding is a
    warning.
    """

    code = "PG010"
    rule = "STAT-2"
    severity = "warning"
    confidence = "high"
    references = ("#1963", "#2020", "#2121", "#2124", "#2139")
    summary = "claimed val_bpb does not match the logged runs"

    _LOG = "final_ttt_s0_exact val_loss:1.88800111 val_bpb:{bpb}\n"
    VALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1183}',
        "train_seed1.log": _LOG.format(bpb="1.11818356"),
        "train_seed2.log": _LOG.format(bpb="1.11840000"),
    }]
    INVALID = [
        {
            "train_gpt.py": "print(1)\n",
            "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.0950}',
            "train_seed1.log": _LOG.format(bpb="1.11818356"),
            "train_seed2.log": _LOG.format(bpb="1.11840000"),
        },
        {
            "train_gpt.py": "print(1)\n",
            "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1300}',
            "train_seed1.log": _LOG.format(bpb="1.11818356"),
            "train_seed2.log": _LOG.format(bpb="1.11840000"),
        },
    ]

    def check(self, ctx):
        claim = claims(ctx).val_bpb
        scores = {name: run.val_bpb for name, run in run_logs(ctx).items() if run.val_bpb is not None}
        if claim is None or not scores:
            return
        value, where = claim
        avg = mean(scores.values())
        listing = ", ".join(f"{name} {bpb:.5f}" for name, bpb in sorted(scores.items()))
        path = "submission.json" if where.startswith("submission.json") else "README.md"
        if value < min(scores.values()) - TOLERANCE:
            seeds = claims(ctx).seeds
            complete = seeds is None or len(scores) >= seeds[0]
            message = f"{where} claims {value}, better than every logged run ({listing})"
            if not complete:  # the claimed runs' logs are not all shipped: an evidence gap
                message += f"; {seeds[1]} names {seeds[0]} runs, so their logs are missing"
            yield self.finding(None, 0, message, evidence=listing, path=path,
                               severity="error" if complete else "warning")
        elif abs(value - avg) > TOLERANCE and not any(abs(value - s) <= TOLERANCE for s in scores.values()):
            yield self.finding(None, 0, f"{where} claims {value}, but the mean of the {len(scores)} logged runs is "
                               f"{avg:.5f} ({listing})", evidence=listing, path=path)
