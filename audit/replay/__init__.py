"""The dynamic audit: replay a submission's evaluation under instrumentation and judge its ledger.

`run_replay(folder, data=..., tokenizer=..., nproc=..., timeout_s=..., env=...)` returns
ReplayOutcome(findings, summary); the summary is the audit JSON's "replay" object. Finding codes:

  RP001 DATA-3  the evaluation could not be followed (no validation tensor or no traced loss)
  RP006 TTT-2   the log reports no val_bpb
  RP010 DATA-3  validation positions left out of the reported sum
  RP011 TTT-2   positions counted more than once in the reported sum
  RP012 TTT-2   the reported sum keeps the last of several scores of a position
  RP013 BYTES-1 the reported val_bpb matches the scored losses over a non-canonical byte count
  RP014 C2      the reported val_bpb is not reproduced by the distributions reaching the loss ops
  RP020 TTT-1   an update used validation positions before they were scored
  RP021 TTT-2   the reported score is a re-score made after updates on the same positions (s_1)
  RP030 C2      a scored distribution does not sum to 1 over the vocabulary
  RP040 NET-1   network access (a socket, or a download tool) during the run
  RP050 BUD-E   the evaluation took longer than its budget
  RP060 C1      perturbing later validation tokens changed earlier scores or the distribution at k
  RP061 C1      perturbing later validation tokens changed the scoring itself
"""

from audit.replay.run import ReplayOutcome, run_replay

__all__ = ["ReplayOutcome", "run_replay"]
