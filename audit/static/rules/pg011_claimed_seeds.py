"""PG011 STAT-2: the seeds README/submission.json claim are not the seeds the logs show."""

from __future__ import annotations


from audit.static.evidence import claims, run_logs
from audit.static.rule import NON_RECORD, Rule

MIN_SEEDS = 3


class ClaimedSeeds(Rule):
    """Records report at least 3 seeds of the same submitted configuration (README; cocohearts on
    #1963, #2020, #2121, #2124, #2139). The seeds listed in submission.json (seeds, seed_results)
    or the "N seeds" of the README must each have a run log in the folder.

    Flags a claimed seed with no log, fewer logged seeds than claimed, and a record (not marked
    non-record) with fewer than 3 seeds.
    """

    code = "PG011"
    rule = "STAT-2"
    severity = "warning"
    confidence = "high"
    references = ("#1963", "#2020", "#2121", "#2124", "#2139")
    summary = "claimed seeds without logs, or fewer than 3 seeds for a record"

    VALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "seeds": [1, 2, 3]}',
        "train_seed1.log": "seed: 1\nfinal val_loss:1.9 val_bpb:1.1\n",
        "train_seed2.log": "seed: 2\nfinal val_loss:1.9 val_bpb:1.1\n",
        "train_seed3.log": "seed: 3\nfinal val_loss:1.9 val_bpb:1.1\n",
    }]
    INVALID = [
        {
            "train_gpt.py": "print(1)\n",
            "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "seeds": [1, 2, 3]}',
            "train_seed1.log": "seed: 1\nfinal val_loss:1.9 val_bpb:1.1\n",
        },
        {
            "train_gpt.py": "print(1)\n",
            "README.md": "# Record: 1-seed run\n",
            "train_seed1.log": "seed: 1\nfinal val_loss:1.9 val_bpb:1.1\n",
        },
    ]

    def check(self, ctx):
        runs = run_logs(ctx)
        logged = {run.seed for run in runs.values() if run.seed is not None and run.val_bpb is not None}
        claim = claims(ctx).seeds
        meta = ctx.submission if isinstance(ctx.submission, dict) else {}
        listed = meta.get("seeds") if isinstance(meta.get("seeds"), (list, dict)) else meta.get("seed_results")
        path = "submission.json" if claim and claim[1].startswith("submission.json") else "README.md"
        if isinstance(listed, (list, dict)) and runs:
            wanted = {int(s) for s in listed if str(s).isdigit()}
            missing = sorted(wanted - logged)
            if missing and logged:
                yield self.finding(None, 0, f"claimed seeds {sorted(wanted)} but no run log shows seed(s) {missing} "
                                   f"(logged: {sorted(logged)})", path=path)
            elif missing:
                yield self.finding(None, 0, f"claimed seeds {sorted(wanted)} but no log says which seed it ran",
                                   path=path, severity="note")
        elif claim is not None and runs and len(logged or runs) < claim[0]:
            yield self.finding(None, 0, f"{claim[1]} claims {claim[0]} seeds, the folder has "
                               f"{len(logged or runs)} run log(s)", path=path)
        count = claim[0] if claim is not None else len(logged)
        presented = ctx.readme is not None or ctx.submission is not None  # something presents it as a record
        if presented and runs and count < MIN_SEEDS and not (ctx.non_record or NON_RECORD.search(ctx.readme or "")):
            yield self.finding(None, 0, f"{count} seed(s): a record needs at least {MIN_SEEDS} runs of the submitted "
                               "configuration", path=path)
