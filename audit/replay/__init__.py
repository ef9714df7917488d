"""The dynamic audit: replay a submission's evaluation under instrumentation and judge its ledger."""

from audit.replay.run import ReplayOutcome, run_replay

__all__ = ["ReplayOutcome", "run_replay"]
