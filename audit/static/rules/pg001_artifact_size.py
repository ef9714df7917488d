"""PG001 SIZE-1: the artifact (code + compressed model) is over 16,000,000 bytes."""

from __future__ import annotations

import re

from audit.static.evidence import ARTIFACT_LIMIT, claims, code_inventory, file_sizes, log_line, run_logs
from audit.static.rule import Rule



# a serialised model shipped in the folder: final_model.int6.ptz, model.pt.zst, quantized.lzma ...
_MODEL_FILE = re.compile(r"\.ptz$|model[^/]*\.(pt|pth|bin|zst|xz|lzma|br|bz2|gz)$", re.IGNORECASE)


class ArtifactOverLimit(Rule):
    """The artifact is code bytes plus compressed model bytes, and must be at most 16,000,000
    (decimal) bytes: "16,000,000 total bytes" in the README FAQ, applied by regina-openai on #1835
    (16,071,321) and cocohearts on #1959 (15,976,086 + 66,546 = 16,042,632).

    Reads the totals the run logs print (`Total submission size …: N bytes`), the sizes
    submission.json claims, and a serialised model shipped in the folder (final_model.int6.ptz)
    plus the code. When a logged run was over the limit but the model bytes plus the code
    as shipped now fit (the code was re-packed after the run), the finding is a warning: the
    numbers need a re-run to be trusted.
    """

    code = "PG001"
    rule = "SIZE-1"
    severity = "error"
    confidence = "high"
    references = ("#1835", "#1959", "README FAQ")
    summary = "artifact (code + compressed model) over 16,000,000 bytes"

    VALID = [{
        "train_gpt.py": "print('hi')\n",
        "train_seed1.log": "Serialized model int6+zstd: 15950000 bytes\nCode size: 40000 bytes\n"
                           "Total submission size int6+zstd: 15990000 bytes\n",
        "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "bytes_total": 15990000}',
    }]
    INVALID = [
        {
            "train_gpt.py": "print('hi')\n",
            "train_seed1.log": "Serialized model int6+zstd: 15990000 bytes\nCode size: 52632 bytes\n"
                               "Total submission size int6+zstd: 16042632 bytes\n",
        },
        {
            "train_gpt.py": "print('hi')\n",
            "submission.json": '{"name": "x", "author": "a", "val_bpb": 1.1, "bytes_total": 16071321}',
        },
    ]

    def check(self, ctx):
        inventory = code_inventory(ctx)
        shipped_code = 0
        if inventory is not None:
            shipped_code = inventory.entry_bytes + sum(inventory.shipped.get(p, 0) for p in inventory.inlined)
        for name, run in run_logs(ctx).items():
            if run.artifact_bytes is None or run.artifact_bytes <= ARTIFACT_LIMIT:
                continue
            where = log_line(ctx.logs[name], re.compile(rf"(Total submission size|artifact_bytes)[^\n]*?\b{run.artifact_bytes}\b"))
            line, evidence = where if where else (0, f"artifact {run.artifact_bytes} bytes")
            over = run.artifact_bytes - ARTIFACT_LIMIT
            message = (f"the logged run's artifact is {run.artifact_bytes:,} bytes, {over:,} over the "
                       f"{ARTIFACT_LIMIT:,}-byte limit")
            severity = None
            if run.model_bytes is not None and run.model_bytes + shipped_code <= ARTIFACT_LIMIT:
                message += (f"; the model ({run.model_bytes:,}) plus the code as shipped now ({shipped_code:,}) "
                            "would fit: the code changed after this run, re-run to prove the size")
                severity = "warning"
            yield self.finding(None, line, message, evidence=evidence, path=name, severity=severity)
        sizes = file_sizes(ctx)
        for name, size in sorted(sizes.items()):
            if _MODEL_FILE.search(name.rsplit("/", 1)[-1]) and size + shipped_code > ARTIFACT_LIMIT:
                yield self.finding(None, 0, f"the shipped model {name} ({size:,} bytes) plus the code ({shipped_code:,} "
                                   f"bytes) is {size + shipped_code:,} bytes, over the {ARTIFACT_LIMIT:,}-byte limit",
                                   path=name, evidence=f"{name}: {size} bytes")
        claimed = claims(ctx).artifact_bytes
        if claimed is not None and claimed[0] > ARTIFACT_LIMIT:
            yield self.finding(None, 0, f"{claimed[1]} claims {claimed[0]:,} bytes, over the "
                               f"{ARTIFACT_LIMIT:,}-byte limit", path="submission.json",
                               evidence=f"{claimed[1]}: {claimed[0]}")
