"""PG008 BYTES-1: val_bpb computed with a fixed bytes-per-token constant instead of real bytes."""

from __future__ import annotations

import ast
import re

from audit.static.evidence import file_index, line_text, python_files
from audit.static.rule import Rule

_CONSTANT_NAME = re.compile(r"bytes?_per_tok|tokens?_per_byte|avg_bytes|mean_bytes|chars?_per_tok", re.IGNORECASE)
_BPB_NAME = re.compile(r"bpb|bits_per_byte", re.IGNORECASE)
PLAUSIBLE = (1.0, 10.0)  # a bytes-per-token ratio of a real tokenizer


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


class FixedBytesPerToken(Rule):
    """The bpb denominator must be the true byte count of the scored tokens, summed per token;
    a fixed bytes-per-token ratio (#2009: `BYTES_PER_TOKEN = 2.7523`, `bpb = loss / ln 2 /
    BYTES_PER_TOKEN`) turns any tokenizer into an arbitrary score. cocohearts on #2009.

    Flags a name like BYTES_PER_TOKEN bound to a number, and a bpb value computed by dividing or
    multiplying by a float literal in the range of bytes-per-token ratios.
    """

    code = "PG008"
    rule = "BYTES-1"
    severity = "error"
    confidence = "high"
    references = ("#2009", "#897")
    summary = "val_bpb from a fixed bytes-per-token constant instead of counted bytes"

    VALID = [
        "import math\ndef bpb(loss_sum, token_count, byte_count):\n"
        "    val_bpb = loss_sum / math.log(2) / byte_count\n    return val_bpb\n",
    ]
    INVALID = [
        "import math\nBYTES_PER_TOKEN = 2.7523\nraw_bpb = raw_val_loss / math.log(2) / BYTES_PER_TOKEN\n",
        "import math\nval_bpb = val_loss / math.log(2) / 2.75\n",
    ]

    def check(self, ctx):
        for src in python_files(ctx):
            for node in file_index(src).of(ast.Assign, ast.AnnAssign):
                if node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
                    value = _number(node.value)
                    if value is not None and any(_CONSTANT_NAME.search(n) for n in names):
                        yield self.finding(src, node.lineno, f"`{names[0]} = {value}`: a fixed bytes-per-token ratio; "
                                           "bpb must divide by the bytes of the scored tokens",
                                           evidence=line_text(src, node.lineno))
                    elif any(_BPB_NAME.search(n) for n in names) and self._divides_by_literal(node.value):
                        yield self.finding(src, node.lineno, "bpb computed with a literal bytes-per-token ratio",
                                           evidence=line_text(src, node.lineno))

    @staticmethod
    def _divides_by_literal(value: ast.AST) -> bool:
        for node in ast.walk(value):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Mult)):
                number = _number(node.right)
                if number is not None and PLAUSIBLE[0] < number < PLAUSIBLE[1] and number != int(number):
                    return True
        return False
