"""The dynamic audit: replay a submission's evaluation under instrumentation and judge its ledger.

`run_replay(folder, data=..., tokenizer=..., nproc=..., timeout_s=..., env=..., shrink=...)` returns
ReplayOutcome(findings, summary); the summary is the audit JSON's "replay" object (with "shrink":
what was made toy-sized, e.g. {"MODEL_DIM": "512->64"}, and "data": the vocabulary replayed). Its finding
codes (RPnnn) and their rule ids are listed in audit/codes.py.
"""

from audit.replay.run import ReplayOutcome, run_replay

__all__ = ["ReplayOutcome", "run_replay"]
