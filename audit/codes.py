"""The finding codes that no static rule class carries: the replay's (RPnnn) and the runner's
(PG9nn). Static rules document themselves (audit/static/rules/); these are listed here once so that
`golf rules`, `golf explain` and docs/rules.md cover every code a report can hold.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DynamicCode:
    code: str
    rule: str  # rule id of shared/spec/rules.md
    source: str  # "replay" (golf audit --replay) or "validate" (golf validate / golf submit)
    summary: str


_CODES = [
    ("RP001", "DATA-3", "replay", "the evaluation could not be followed (no validation tensor or no traced loss)"),
    ("RP006", "TTT-2", "replay", "the log reports no val_bpb"),
    ("RP010", "DATA-3", "replay", "validation positions left out of the reported sum"),
    ("RP011", "TTT-2", "replay", "positions counted more than once in the reported sum"),
    ("RP012", "TTT-2", "replay", "the reported sum keeps the last of several scores of a position"),
    ("RP013", "BYTES-1", "replay", "the reported val_bpb matches the scored losses over a non-canonical byte count"),
    ("RP014", "C2", "replay", "the reported val_bpb is not reproduced by the distributions reaching the loss ops"),
    ("RP020", "TTT-1", "replay", "an update used validation positions before they were scored"),
    ("RP021", "TTT-2", "replay", "the reported score is a re-score made after updates on the same positions (s_1)"),
    ("RP022", "TTT-1", "replay", "the reported pass scored positions a separate adaptation phase had trained on"),
    ("RP023", "TTT-4", "replay", "optimizer steps on unscored validation tokens whose updates nothing read again (a warm-up)"),
    ("RP030", "C2", "replay", "a scored distribution does not sum to 1 over the vocabulary"),
    ("RP040", "NET-1", "replay", "network access (a socket, or a download tool) during the run"),
    ("RP050", "BUD-E", "replay", "the evaluation took longer than its budget"),
    ("RP060", "C1", "replay", "perturbing later validation tokens changed earlier scores or the distribution at k"),
    ("RP061", "C1", "replay", "perturbing later validation tokens changed the scoring itself"),
    ("RP070", "FMT-1", "replay", "the submission's syntax cannot be compiled by the replay's Python (beyond the 3.12 f-string rewrite)"),
    ("RP071", "FMT-1", "replay", "a Triton kernel the CUDA emulation has no torch equivalent for (half precision)"),
    ("RP090", "FMT-1", "replay", "a size the code fixes could not be shrunk for the replay (it runs as written)"),
    ("RP091", "FMT-1", "replay", "packages the submission declares are not installed for the replay (never installed)"),
    ("RP092", "FMT-1", "replay", "no log or run command gives the reported run's configuration: the replay ran the code's defaults"),
    ("PG901", "FMT-1", "validate", "train_gpt.py (the entry) is missing: the submission cannot be run"),
    ("PG902", "FMT-1", "validate", "submission.json is missing or not a valid JSON object"),
    ("PG903", "FMT-1", "validate", "a seed's run failed or its log reports no val_bpb"),
    ("PG904", "BUD-T", "validate", "a seed's training took longer than 600 s"),
    ("PG905", "BUD-E", "validate", "a seed's evaluation took longer than 600 s"),
    ("PG906", "SIZE-1", "validate", "a seed's artifact is over 16,000,000 bytes"),
    ("PG907", "STAT-2", "validate", "fewer than 3 scored seeds"),
    ("PG908", "STAT-2", "validate", "the seed logs come from different code or configurations"),
    ("PG909", "SEED-1", "validate", "seeds claimed in submission.json and seeds logged differ"),
    ("PG910", "STAT-2", "validate", "submission.json's val_bpb disagrees with the seed logs"),
    ("PG911", "STAT-1", "validate", "not a significant improvement on the record"),
    ("PG912", "SIZE-1", "validate", "submission.json's artifact bytes disagree with the logs"),
    ("PG920", "FMT-1", "validate", "smoke run: the submission did not run end to end at toy size"),
]

DYNAMIC_CODES: dict[str, DynamicCode] = {c[0]: DynamicCode(*c) for c in _CODES}
