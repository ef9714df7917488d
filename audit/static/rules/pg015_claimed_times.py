"""PG015 BUD-T: training/evaluation times claimed in submission.json differ from the logs."""

from __future__ import annotations

from audit.static.evidence import claims, run_logs
from audit.static.rule import Rule

SLACK_S = 2.0  # rounding and the last step's validation
SLACK_FRACTION = 0.05


class ClaimedTimes(Rule):
    """Times claimed per seed (submission.json seed_results train_time_s / eval_time_s, or
    their means) must be the logged ones: BUD-T and BUD-E are judged on the logs (#1908: 601,153
    ms logged; #1956), and a claim that understates them hides a budget problem.

    A claimed time shorter than the logged one (per-seed claims against the longest log, means
    against the mean of the logs) by more than 2 s (5% for evaluation) is a warning.
    """

    code = "PG015"
    rule = "BUD-T"
    severity = "warning"
    confidence = "high"
    references = ("#1908", "#1956")
    summary = "claimed train/eval time shorter than the logged time"

    VALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "seed_results": '
                           '{"42": {"val_bpb": 1.1, "train_time_s": 596.1}}}',
        "train_seed42.log": "stopping_early: wallclock_cap train_time:596091ms step:4872/20000\n",
    }]
    INVALID = [{
        "train_gpt.py": "print(1)\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "seed_results": '
                           '{"42": {"val_bpb": 1.1, "train_time_s": 590.0, "eval_time_s": 400.0}}}',
        "train_seed42.log": "stopping_early: wallclock_cap train_time:601153ms step:4945/20000\n"
                            "final_ttt val_loss:1.9 val_bpb:1.1 eval_time:520000ms\n",
    }]

    def check(self, ctx):
        c = claims(ctx)
        runs = run_logs(ctx)
        for attr, what in (("train_seconds", "training"), ("eval_seconds", "evaluation")):
            claimed = getattr(c, attr)
            logged = {name: getattr(run, attr) for name, run in runs.items() if getattr(run, attr) is not None}
            if claimed is None or not logged:
                continue
            if claimed[1].endswith("_mean"):  # a mean is compared with the mean of the logs
                name, logged_value = f"the mean of {len(logged)} logs", sum(logged.values()) / len(logged)
            else:  # the longest claimed run with the longest logged one
                name, logged_value = max(logged.items(), key=lambda kv: kv[1])
            slack = max(SLACK_S, SLACK_FRACTION * claimed[0]) if what == "evaluation" else SLACK_S
            if logged_value - claimed[0] > slack:
                yield self.finding(None, 0, f"{claimed[1]} claims {claimed[0]:.1f} s of {what}; {name} "
                                   f"{'is' if name.startswith('the mean') else 'logs'} {logged_value:.1f} s",
                                   path="submission.json", evidence=f"claimed {claimed[0]} s, logged {logged_value:.1f} s")
