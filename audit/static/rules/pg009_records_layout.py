"""PG009 FMT-1: the submission folder lacks the records layout (README, submission.json, logs,
train_gpt.py) or submission.json does not follow the records' schema."""

from __future__ import annotations

from audit.static.evidence import is_single_file
from audit.static.rule import Rule
from audit.submission import check_meta


class RecordsLayout(Rule):
    """A submission is one folder under records/… with README.md, submission.json, the run logs
    and a train_gpt.py that runs from that folder (README; cocohearts on #1031, #1120, #1143;
    valerio on #529, #639, #656). submission.json carries name, author, github_id, val_bpb, the
    seeds or per-seed results and the artifact bytes, with numbers as numbers.

    Only folders are checked (auditing a lone .py file says nothing about the layout).
    """

    code = "PG009"
    rule = "FMT-1"
    severity = "warning"
    confidence = "high"
    references = ("#1031", "#1120", "#1143", "#529", "#639", "#656")
    summary = "records layout: README.md, submission.json (schema), logs, train_gpt.py"

    VALID = [{
        "train_gpt.py": "print(1)\n",
        "README.md": "# Record\n",
        "submission.json": '{"name": "x", "author": "a", "github_id": "a", "val_bpb": 1.08, '
                           '"seeds": [1, 2, 3], "bytes_total": 15900000, "date": "2026-04-01"}',
        "train_seed1.log": "final val_loss:2.8 val_bpb:1.08\n",
    }]
    INVALID = [
        "print(1)\n",
        {
            "train_gpt.py": "print(1)\n",
            "README.md": "# Record\n",
            "submission.json": '{"name": "x", "author": "a", "val_bpb": "1.08", "bytes_total": 15900000.5}',
            "train_seed1.log": "final val_loss:2.8 val_bpb:1.08\n",
        },
    ]

    def check(self, ctx):
        if is_single_file(ctx) or ctx.entry is None:
            return
        missing = []
        if ctx.readme is None:
            missing.append("README.md")
        if ctx.submission is None:
            missing.append("submission.json")
        if not ctx.logs:
            missing.append("a run log (*.log / *.txt)")
        if ctx.entry.path != "train_gpt.py":
            missing.append(f"train_gpt.py (the entry is {ctx.entry.path})")
        if missing:
            yield self.finding(None, 0, "the folder does not follow the records layout: missing " + ", ".join(missing),
                               path=".")
        if ctx.submission is not None:
            problems = check_meta(ctx.submission)
            if problems:
                yield self.finding(None, 0, "submission.json: " + "; ".join(problems), path="submission.json",
                                   evidence="; ".join(problems))
