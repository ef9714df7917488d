"""PG114 DATA-2: the validation split was prepared with fewer documents than the canonical 50,000."""

from __future__ import annotations

from audit.static.data_provenance import (
    CANONICAL_VAL_DOCS, TRUNCATION, data_facts, manifest_val_tokens, prepared_val_docs,
)
from audit.static.rule import Rule

_CODE = "print('train')\n"


class ValidationSplitSmaller(Rule):
    """Training shards must not contain the canonical validation documents (the first 50,000 of
    FineWeb). A re-tokenised dataset (CaseOps) prepared locally with fewer validation documents
    (the prep script's `--val-docs` default of 10,000) puts the other 40,000 into the training
    shards. The evidence is what ran, not a script default: a prep command in README.md or a
    shipped script that sets fewer validation documents; a shipped manifest of the data that
    records fewer validation documents, or fewer validation tokens than the set the reported runs
    evaluated (their logged `val_tokens`, else the canonical count of their tokenizer: 47,851,520
    CaseOps sp8192, 40,540,160 sp8192, 62,021,632 sp1024). A run that evaluates fewer tokens than
    canonical is PG121 (BYTES-1): its denominator is not the canonical text.

    Precedent: Issue #2127; cocohearts on #2018 and #2130; accepted #1855/#2135 kept the same
    script default but used the canonical data, so a default alone is not flagged.
    """

    code = "PG114"
    rule = "DATA-2"
    severity = "error"
    confidence = "high"
    references = ("Issue #2127", "#2018", "#2130", "#1855", "#2135")
    summary = "validation split prepared with fewer documents than the canonical 50,000"

    VALID = [
        {"train_gpt.py": _CODE, "train_seed42.log": "vocab_size: 8192\ntokenizer_path: ./tok/caseops_v1.model\n"
                                                    "val_tokens: 47851520\n"},
        {"train_gpt.py": _CODE, "train_seed1.log": "vocab_size: 1024\nval_tokens: 62013440\n"},
        # the prep script's default is not evidence; the logged count is canonical
        {"train_gpt.py": _CODE, "prepare_caseops_data.py": "import argparse\np = argparse.ArgumentParser()\n"
                                                           "p.add_argument('--val-docs', type=int, default=10000)\n",
         "train_seed42.log": "vocab_size: 8192\ncaseops_enabled: True\nval_tokens: 47851520\n"},
    ]
    INVALID = [
        # the training shards come from a split whose validation part is smaller than the evaluated set
        {"train_gpt.py": _CODE, "train_seed42.log": "vocab_size: 8192\ncaseops_enabled: True\n"
                                                    "val_tokens: 47851520\n",
         "verification/compare.json": '{"rebuilt_val_tokens": 9570001, "train_shards": 80}'},
        {"train_gpt.py": _CODE, "README.md": "```\npython prepare_caseops_data.py --val-docs 10000 --out ./data\n```\n"},
        {"train_gpt.py": _CODE, "data/manifest.json": '{"tokenizer": "sp8192", "num_val_docs": 10000}'},
    ]

    def check(self, ctx):
        facts = data_facts(ctx)
        evaluated = max((f.value for f in facts.val_tokens), default=None) or facts.canonical_tokens
        for docs, where in prepared_val_docs(ctx):
            if docs < CANONICAL_VAL_DOCS:
                yield self.finding(None, where.line, f"the data was prepared with {docs:,} validation documents, "
                                   f"fewer than the canonical {CANONICAL_VAL_DOCS:,}: the training shards hold the "
                                   "other validation documents", evidence=where.text, path=where.path)
        for tokens, where in manifest_val_tokens(ctx) if evaluated else ():
            if tokens < evaluated * (1 - TRUNCATION):
                yield self.finding(None, where.line, f"the shipped manifest's split has {tokens:,} validation tokens, "
                                   f"fewer than the {evaluated:,} the runs evaluate: the documents in between are in "
                                   "its training shards", evidence=where.text, path=where.path)
