"""PG121 BYTES-1: the logged validation byte total or token count is not the canonical figure."""

from __future__ import annotations

from audit.static.data_provenance import CANONICAL_VAL_BYTES, TRUNCATION, data_facts
from audit.static.rule import Rule

_CODE = "print('eval')\n"


class LoggedValidationFigures(Rule):
    """The bpb denominator is the UTF-8 bytes of the canonical validation text: 151,073,604 bytes
    decoded (the Scylla audit, #1289), 151,074,309 in the CaseOps raw-byte sidecar (cocohearts on
    #2138). A reported run that logs another byte total divided by other bytes. A logged
    `val_tokens` above the canonical count of its tokenizer (more than 0.1% over) means another
    tokenisation or another validation set; it is a warning, as the canonical counts are those
    the records log (one sp1024 log of the record history shows 63,779,840).
    """

    code = "PG121"
    rule = "BYTES-1"
    severity = "error"
    confidence = "high"
    references = ("#1289", "#2138", "#897")
    summary = "logged validation bytes or tokens differ from the canonical figures"

    VALID = [
        {"train_gpt.py": _CODE, "train_seed1.log": "vocab_size: 1024\nval_tokens: 62021632\nval_bytes: 151073604\n"},
        {"train_gpt.py": _CODE, "train_seed1.log": "vocab_size: 8192\ncaseops_enabled: True\nval_tokens: 47851520\n"
                                                   "val_bytes: 151074309\n"},
    ]
    INVALID = [
        {"train_gpt.py": _CODE, "train_seed1.log": "vocab_size: 1024\nval_tokens: 62021632\nval_bytes: 157311209\n"},
        {"train_gpt.py": _CODE, "train_seed1.log": "vocab_size: 8192\nval_tokens: 44101632\n"},
    ]

    def check(self, ctx):
        facts = data_facts(ctx)
        expected = CANONICAL_VAL_BYTES[facts.case_encoded]
        for fact in facts.val_bytes:
            if fact.value != expected:
                yield self.finding(None, fact.line, f"the run divided by {fact.value:,} validation bytes; the "
                                   f"canonical {'CaseOps sidecar' if facts.case_encoded else 'decoded text'} has "
                                   f"{expected:,} ({fact.value / expected - 1:+.2%})",
                                   evidence=f"{fact.log}: {fact.value}", path=fact.log)
        canonical = facts.canonical_tokens
        for fact in facts.val_tokens if canonical is not None else ():
            if fact.value > canonical * (1 + TRUNCATION):
                yield self.finding(None, fact.line, f"the run evaluated {fact.value:,} validation tokens, more "
                                   f"than the canonical {canonical:,} of its tokenizer: another tokenisation or "
                                   "another validation set", evidence=f"{fact.log}: val_tokens {fact.value}",
                                   path=fact.log, severity="warning")
