"""PG012 SIZE-1: the artifact size README/submission.json claim is smaller than the logged one."""

from __future__ import annotations

from audit.static.evidence import claims, run_logs
from audit.static.rule import Rule

SLACK = 1_000  # bytes: logs and claims round differently (code re-measured, json written by hand)


class ClaimedBytes(Rule):
    """The artifact bytes a submission claims (submission.json bytes_total / artifact_bytes /
    per-seed artifact_bytes) must be what its runs produced. regina-openai checked #1835 by
    hand (16,071,321 bytes against a claim under 16 MB); #1412 claimed the model bytes while its
    logs counted 16,054,963 with the code.

    A claim smaller than every logged total by more than rounding is a warning that quotes both;
    when the logged total is also over 16,000,000 bytes PG001 reports the violation itself.
    """

    code = "PG012"
    rule = "SIZE-1"
    severity = "warning"
    confidence = "high"
    references = ("#1835", "#1412")
    summary = "claimed artifact bytes smaller than the logged artifact"

    _LOG = "Total submission size int6+brotli: {n} bytes\n"
    VALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "bytes_total": 15978121}',
        "train_seed1.log": _LOG.format(n=15978121),
    }]
    INVALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "bytes_total": 15978121}',
        "train_seed1.log": _LOG.format(n=16054963),
    }]

    def check(self, ctx):
        claim = claims(ctx).artifact_bytes
        logged = {name: run.artifact_bytes for name, run in run_logs(ctx).items() if run.artifact_bytes is not None}
        if claim is None or not logged:
            return
        value, where = claim
        smallest = min(logged.values())
        if value + SLACK < smallest:
            listing = ", ".join(f"{name} {n:,}" for name, n in sorted(logged.items()))
            yield self.finding(None, 0, f"{where} claims {value:,} bytes, but every logged run is larger ({listing})",
                               evidence=listing, path="submission.json" if "submission" in where else "README.md")
