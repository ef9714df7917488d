"""PG121 BYTES-1: the logged validation byte total or token count is not the canonical figure."""

from __future__ import annotations

from audit.static.data_provenance import CANONICAL_VAL_BYTES, TRUNCATION, data_facts
from audit.static.rule import Rule

_CODE = "print('eval')\n"


class LoggedValidationFigures(Rule):
    """The bpb denominator is the UTF-8 bytes of the canonical validation text: 151,073,604 bytes
    decoded (the Scylla audit, #1289), 151,074,309 in the CaseOps raw-byte sidecar (cocohearts on
    #2138). A reported run that logs another byte total (`val_bytes: N`, or a scorer's
    `tokens=N bytes=M` report) divided by other bytes. A logged `val_tokens` below the canonical
    count of its tokenizer (47,851,520 CaseOps sp8192, 40,540,160 sp8192, 62,021,632 sp1024, less
    at most 0.1% of truncation to a sequence multiple) scored a smaller set (#2039: 9,662,464, the
    10,000-document split); one above it (more than 0.1% over) is a warning, as the canonical counts
    are those the records log (one sp1024 log of the record history shows 63,779,840).
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
        {"train_gpt.py": _CODE, "train_seed42.log": "vocab_size: 8192\ncaseops_enabled: True\nval_tokens: 9570304\n"},
        {"train_gpt.py": _CODE, "train_seed42.log": "vocab_size: 8192\ncaseops_enabled: True\n"
                                                    "ppm_mixer tokens=47851520 bytes=164000123 nll=0.71\n"},
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
            if fact.value < canonical * (1 - TRUNCATION):
                yield self.finding(None, fact.line, f"the run evaluated {fact.value:,} validation tokens, "
                                   f"{1 - fact.value / canonical:.0%} fewer than the canonical {canonical:,} of its "
                                   f"tokenizer (vocab {facts.vocab_size.value}"
                                   f"{', case-encoded' if facts.case_encoded else ''}): not the canonical "
                                   "validation text", evidence=f"{fact.log}: val_tokens {fact.value}", path=fact.log)
            elif fact.value > canonical * (1 + TRUNCATION):
                yield self.finding(None, fact.line, f"the run evaluated {fact.value:,} validation tokens, more "
                                   f"than the canonical {canonical:,} of its tokenizer: another tokenisation or "
                                   "another validation set", evidence=f"{fact.log}: val_tokens {fact.value}",
                                   path=fact.log, severity="warning")
