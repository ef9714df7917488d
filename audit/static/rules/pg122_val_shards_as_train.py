"""PG122 DATA-1: the validation shards were linked or copied onto the training data paths."""

from __future__ import annotations

import re

from audit.static.data_provenance import data_facts, val_copied_to_train
from audit.static.rule import Rule

_CODE = "import glob\ntrain_files = sorted(glob.glob('./data/fineweb10B_sp1024/fineweb_train_*.bin'))\n"
_VAL = re.compile(r"fineweb_val")


class ValidationShardsAsTraining(Rule):
    """No training on the validation data. The training code can be the baseline's while the
    training files are the validation shards: #44 linked `fineweb_val_*` onto the training paths
    with `ln -s` and left the code unchanged. Read from what ran: `ln -s` / `cp` / `mv` / `rsync`
    commands in README.md and shipped scripts whose sources are validation shards and whose target
    is a training path, and a logged training file pattern that names the validation shards.

    Precedent: README FAQ; 0hq on #44; cocohearts on #64 and #179.
    """

    code = "PG122"
    rule = "DATA-1"
    severity = "error"
    confidence = "high"
    references = ("#44", "#64", "#179", "README FAQ")
    summary = "validation shards linked or copied onto the training data paths"

    VALID = [
        {"train_gpt.py": _CODE, "README.md": "```\nln -s /shared/fineweb10B_sp1024 ./data/fineweb10B_sp1024\n"
                                             "cp ./data/fineweb_val_000000.bin ./backup/\n```\n"},
        {"train_gpt.py": _CODE, "train_seed1.log": "train_files: ./data/fineweb10B_sp1024/fineweb_train_*.bin\n"},
    ]
    INVALID = [
        {"train_gpt.py": _CODE, "README.md": "```\ncd data/fineweb10B_sp1024\n"
                                             "ln -s fineweb_val_000000.bin fineweb_train_000000.bin\n```\n"},
        {"train_gpt.py": _CODE, "prep.sh": "for f in data/fineweb10B_sp1024/fineweb_val_*.bin; do\n"
                                           "  cp \"$f\" \"${f/val/train}\"\ndone\n"},
        {"train_gpt.py": _CODE, "train_seed1.log": "train_files: ./data/fineweb10B_sp1024/fineweb_val_*.bin\n"},
    ]

    def check(self, ctx):
        for command in val_copied_to_train(ctx):
            yield self.finding(None, command.line, "the validation shards are put on a training path: the model "
                               "trains on the data it is scored on", evidence=command.text, path=command.path)
        for fact in data_facts(ctx).train_patterns:
            if _VAL.search(str(fact.value)):
                yield self.finding(None, fact.line, f"the run's training files are the validation shards "
                                   f"(`{fact.value}`)", evidence=f"{fact.log}: {fact.value}", path=fact.log)
